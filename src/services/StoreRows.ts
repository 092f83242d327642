import { Effect, Either, ParseResult, Schema } from "effect"
import { InvalidRowError } from "../domain/Errors.ts"
import type { SentTicket } from "../domain/Receipts.ts"
import type { InvalidRow } from "./Store.ts"

/**
 * Decoding of the rows the scheduler's SQL functions answer, shared by every store: whether the rows
 * come from a Postgres driver or as JSON from PostgREST, they pass the same Schemas.
 */

const UserIdOnly = Schema.Struct({ user_id: Schema.UUID })

/**
 * Where a row went wrong, without the values: Schema's own message quotes the row, and a row can hold
 * a push token or a name. Paths and the kind of problem are enough to find the column.
 */
const describeParseError = (parseError: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(parseError)
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "row"}: ${issue._tag}`)
    .join("; ")

/** Decodes rows one by one so that one malformed row costs one mentor, not the page. */
export const decodeEach = <A, I>(schema: Schema.Schema<A, I>, entity: string, rows: ReadonlyArray<unknown>) => {
  const decode = Schema.decodeUnknownEither(schema)
  const valid: Array<A> = []
  const invalid: Array<InvalidRow> = []

  for (const row of rows) {
    Either.match(decode(row), {
      onRight: (value) => valid.push(value),
      onLeft: (parseError) => {
        const owner = Schema.decodeUnknownOption(UserIdOnly)(row)
        invalid.push({
          userId: owner._tag === "Some" ? owner.value.user_id : null,
          error: new InvalidRowError({ entity, message: describeParseError(parseError) })
        })
      }
    })
  }

  return { valid, invalid }
}

/** Decodes all rows or fails with one InvalidRowError: for answers that are not about one mentor each. */
export const decodeAll =
  <A, I>(schema: Schema.Schema<A, I>, entity: string) =>
  (rows: ReadonlyArray<unknown>) =>
    Schema.decodeUnknown(Schema.Array(schema))(rows).pipe(
      Effect.mapError((parseError) => new InvalidRowError({ entity, message: describeParseError(parseError) }))
    )

/** A bigint count: text from node-postgres, a number from PGlite and PostgREST. */
export const CountRow = Schema.Struct({ count: Schema.Union(Schema.Number, Schema.NumberFromString) })

export const PageRow = Schema.Struct({ user_id: Schema.UUID })

export const OpenRunRow = Schema.Struct({
  resume_cursor: Schema.NullOr(Schema.UUID),
  locked_by: Schema.NullOr(Schema.UUID),
  abandoned: Schema.Array(Schema.UUID)
})

export const RenewRunRow = Schema.Struct({ renewed: Schema.Boolean })

/** A stored push ticket; the token id is text, as the program handles token ids. */
export const TicketRow = Schema.Struct({ ticket_id: Schema.String, token_id: Schema.String })

/** A ticket as `scheduler_record_tickets` takes it. */
export const ticketRow = (ticket: SentTicket) => ({
  ticket_id: ticket.ticketId,
  token_id: ticket.tokenId,
  notification_id: ticket.notificationId
})
