import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Layer } from "effect"
import { DatabaseError, type DatabaseErrorNames, databaseErrorMessage, databaseErrorReason } from "../domain/Errors.ts"
import { type Candidate, ClaimedNotification, EvaluationRow, ReclaimedNotification } from "../domain/Evaluation.ts"
import {
  type Claim,
  type Evaluation,
  finishedRunStats,
  type Reclaim,
  type ScenarioCoverage,
  Store,
  type StoreApi
} from "./Store.ts"
import { CountRow, decodeAll, decodeEach, OpenRunRow, PageRow, RenewRunRow, TicketRow, ticketRow } from "./StoreRows.ts"

const codeOf = (cause: unknown): string | undefined => {
  if (typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string") {
    return cause.code
  }
  return undefined
}

const messageOf = (cause: unknown, fallback: string): string =>
  cause instanceof Error && cause.message.length > 0 ? cause.message : fallback

/** Turns a driver error into the program's DatabaseError, keeping the SQLSTATE and dropping driver internals. */
export const fromSqlError = (error: SqlError.SqlError): DatabaseError => {
  const code = codeOf(error.cause)
  const serverMessage = messageOf(error.cause, error.message)
  const reason = databaseErrorReason(code, `${error.message} ${serverMessage}`)

  return new DatabaseError({
    reason,
    code,
    message: databaseErrorMessage(reason, code, serverMessage, namesOf(error.cause)),
    cause: error.cause
  })
}

const nameField = (cause: object, field: "table" | "column" | "constraint"): string | undefined => {
  const value = (cause as Record<string, unknown>)[field]
  return typeof value === "string" ? value : undefined
}

const namesOf = (cause: unknown): DatabaseErrorNames =>
  typeof cause === "object" && cause !== null
    ? {
        table: nameField(cause, "table"),
        column: nameField(cause, "column"),
        constraint: nameField(cause, "constraint")
      }
    : {}

/** Postgres array literal for values that need no quoting (uuids, scenario names). */
const arrayLiteral = (values: ReadonlyArray<string>): string => `{${values.join(",")}}`

/** The store over any @effect/sql client: a Postgres server, Supabase's database or the embedded PGlite. */
export const makeSqlStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const run = <A>(statement: Effect.Effect<A, SqlError.SqlError>) => Effect.mapError(statement, fromSqlError)

  const api: StoreApi = {
    openRun: (invocationId, startedAt, lock) =>
      run(
        sql`select resume_cursor, locked_by, abandoned from scheduler_open_run(${invocationId}::uuid, ${startedAt.toISOString()}::timestamptz, ${lock.overlap}, ${lock.leaseSeconds}::integer)`
      ).pipe(
        Effect.flatMap(decodeAll(OpenRunRow, "scheduler_runs")),
        Effect.map((rows) => ({
          resumeCursor: rows[0]?.resume_cursor ?? null,
          lockedBy: rows[0]?.locked_by ?? null,
          abandoned: rows[0]?.abandoned ?? []
        }))
      ),

    renewRun: (invocationId) =>
      run(sql`select scheduler_renew_run(${invocationId}::uuid) as renewed`).pipe(
        Effect.flatMap(decodeAll(RenewRunRow, "scheduler_runs")),
        Effect.map((rows) => rows[0]?.renewed ?? false),
        Effect.catchTag("InvalidRowError", (error) =>
          Effect.fail(new DatabaseError({ reason: "query", message: error.message }))
        )
      ),

    finishRun: (finished) =>
      run(
        sql`select scheduler_finish_run(${finished.invocationId}::uuid, ${finished.finishedAt.toISOString()}::timestamptz, ${finished.outcome}, ${JSON.stringify(finishedRunStats(finished))}::jsonb, ${finished.resumeCursor}::uuid)`
      ).pipe(Effect.asVoid),

    recordCoverage: (coverage, evaluatedAt) =>
      coverage.length === 0
        ? Effect.void
        : run(
            sql`select scheduler_record_coverage(${JSON.stringify(coverage.map(coverageRow))}::jsonb, ${evaluatedAt.toISOString()}::timestamptz)`
          ).pipe(Effect.asVoid),

    countActive: (range) =>
      run(sql`select scheduler_count_active(${range.after}::uuid, ${range.until}::uuid) as count`).pipe(
        Effect.flatMap(decodeAll(CountRow, "peer_mentors")),
        Effect.map((rows) => rows[0]?.count ?? 0)
      ),

    activePage: (range, limit) =>
      run(
        sql`select user_id from scheduler_active_page(${range.after}::uuid, ${range.until}::uuid, ${limit}::integer)`
      ).pipe(
        Effect.flatMap(decodeAll(PageRow, "peer_mentors")),
        Effect.map((rows) => rows.map((row) => row.user_id))
      ),

    evaluate: (userIds, now, scenarios) =>
      run(
        sql`select * from scheduler_evaluate(${arrayLiteral(userIds)}::uuid[], ${now.toISOString()}::timestamptz, ${arrayLiteral(scenarios)}::text[])`
      ).pipe(
        Effect.map((rows): Evaluation => {
          const { invalid, valid } = decodeEach(EvaluationRow, "scheduler_evaluate", rows)
          return { rows: valid, invalid }
        })
      ),

    claim: (invocationId, candidates) =>
      candidates.length === 0
        ? Effect.succeed<Claim>({ claimed: [], invalid: [] })
        : run(sql`select * from scheduler_claim(${invocationId}::uuid, ${encodeCandidates(candidates)}::jsonb)`).pipe(
            Effect.map((rows): Claim => {
              const { invalid, valid } = decodeEach(ClaimedNotification, "scheduler_claim", rows)
              return { claimed: valid, invalid }
            })
          ),

    markSending: (invocationId, notificationIds) =>
      notificationIds.length === 0
        ? Effect.void
        : run(sql`select scheduler_mark_sending(${invocationId}::uuid, ${arrayLiteral(notificationIds)}::uuid[])`).pipe(
            Effect.asVoid
          ),

    reclaim: (invocationId, options) =>
      run(
        sql`select * from scheduler_reclaim(${invocationId}::uuid, ${options.leaseSeconds}::integer, ${options.limit}::integer, ${options.maxAttempts}::integer)`
      ).pipe(
        Effect.map((rows): Reclaim => {
          const { invalid, valid } = decodeEach(ReclaimedNotification, "scheduler_reclaim", rows)
          return { reclaimed: valid, invalid }
        })
      ),

    recordDispatch: (invocationId, results) =>
      results.length === 0
        ? Effect.void
        : run(sql`select scheduler_record_dispatch(${invocationId}::uuid, ${JSON.stringify(results)}::jsonb)`).pipe(
            Effect.asVoid
          ),

    recordTickets: (tickets) =>
      tickets.length === 0
        ? Effect.void
        : run(sql`select scheduler_record_tickets(${JSON.stringify(tickets.map(ticketRow))}::jsonb)`).pipe(
            Effect.asVoid
          ),

    dueTickets: (olderThanSeconds, limit) =>
      run(
        sql`select ticket_id, token_id from scheduler_due_tickets(${olderThanSeconds}::integer, ${limit}::integer)`
      ).pipe(
        Effect.flatMap(decodeAll(TicketRow, "push_receipts")),
        Effect.map((rows) => rows.map((row) => ({ ticketId: row.ticket_id, tokenId: row.token_id })))
      ),

    // Ticket ids are the provider's text, so they travel as JSON rather than as an array literal that would need quoting.
    settleTickets: (ticketIds, revokeTokenIds) =>
      ticketIds.length === 0
        ? Effect.void
        : run(
            sql`select scheduler_settle_tickets(array(select pg_catalog.jsonb_array_elements_text(${JSON.stringify(ticketIds)}::jsonb)), ${arrayLiteral(revokeTokenIds)}::bigint[])`
          ).pipe(Effect.asVoid)
  }

  return api
})

const encodeCandidates = (candidates: ReadonlyArray<Candidate>): string => JSON.stringify(candidates)

const coverageRow = (coverage: ScenarioCoverage) => ({
  organisation_id: coverage.organisationId,
  scenario_type: coverage.scenarioType,
  evaluated: coverage.evaluated
})

export const layer: Layer.Layer<Store, never, SqlClient.SqlClient> = Layer.effect(Store, makeSqlStore)
