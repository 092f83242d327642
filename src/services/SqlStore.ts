import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Either, Layer, Schema } from "effect"
import { statsFields } from "../domain/BatchStats.ts"
import { DatabaseError, InvalidRowError } from "../domain/Errors.ts"
import { type Candidate, ClaimedNotification, EvaluationRow, ReclaimedNotification } from "../domain/Evaluation.ts"
import { type Claim, type Evaluation, type InvalidRow, type Reclaim, Store, type StoreApi } from "./Store.ts"

/** SQLSTATE classes and socket errors that mean the server is gone rather than the statement wrong. */
const unavailableCodes = /^(08|57P0|53300|ECONN|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|EPIPE|EHOSTUNREACH)/

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
  const cannotConnect = /connect|connection timed out|terminat/i.test(error.message)
  const reason = (code !== undefined && unavailableCodes.test(code)) || cannotConnect ? "unavailable" : "query"

  return new DatabaseError({ reason, code, message: messageOf(error.cause, error.message), cause: error.cause })
}

/** Postgres array literal for values that need no quoting (uuids, scenario names). */
const arrayLiteral = (values: ReadonlyArray<string>): string => `{${values.join(",")}}`

const UserIdOnly = Schema.Struct({ user_id: Schema.UUID })

/** Decodes rows one by one so that one malformed row costs one mentor, not the page. */
const decodeEach = <A, I>(schema: Schema.Schema<A, I>, entity: string, rows: ReadonlyArray<unknown>) => {
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
          error: new InvalidRowError({ entity, message: parseError.message })
        })
      }
    })
  }

  return { valid, invalid }
}

const CountRow = Schema.Struct({ count: Schema.Union(Schema.Number, Schema.NumberFromString) })
const PageRow = Schema.Struct({ user_id: Schema.UUID })
const OpenRunRow = Schema.Struct({ resume_cursor: Schema.NullOr(Schema.UUID) })

const decodeAll =
  <A, I>(schema: Schema.Schema<A, I>, entity: string) =>
  (rows: ReadonlyArray<unknown>) =>
    Schema.decodeUnknown(Schema.Array(schema))(rows).pipe(
      Effect.mapError((parseError) => new InvalidRowError({ entity, message: parseError.message }))
    )

/** The store over any @effect/sql client: a Postgres server, Supabase's database or the embedded PGlite. */
export const makeSqlStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const run = <A>(statement: Effect.Effect<A, SqlError.SqlError>) => Effect.mapError(statement, fromSqlError)

  const api: StoreApi = {
    openRun: (invocationId, startedAt) =>
      run(
        sql`select resume_cursor from scheduler_open_run(${invocationId}::uuid, ${startedAt.toISOString()}::timestamptz)`
      ).pipe(
        Effect.flatMap(decodeAll(OpenRunRow, "scheduler_runs")),
        Effect.map((rows) => ({ resumeCursor: rows[0]?.resume_cursor ?? null }))
      ),

    finishRun: (finished) =>
      run(
        sql`select scheduler_finish_run(${finished.invocationId}::uuid, ${finished.finishedAt.toISOString()}::timestamptz, ${finished.outcome}, ${JSON.stringify(statsFields(finished.stats))}::jsonb, ${finished.resumeCursor}::uuid)`
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

    markSending: (notificationIds) =>
      notificationIds.length === 0
        ? Effect.void
        : run(sql`select scheduler_mark_sending(${arrayLiteral(notificationIds)}::uuid[])`).pipe(Effect.asVoid),

    reclaim: (invocationId, options) =>
      run(
        sql`select * from scheduler_reclaim(${invocationId}::uuid, ${options.leaseSeconds}::integer, ${options.limit}::integer, ${options.maxAttempts}::integer)`
      ).pipe(
        Effect.map((rows): Reclaim => {
          const { invalid, valid } = decodeEach(ReclaimedNotification, "scheduler_reclaim", rows)
          return { reclaimed: valid, invalid }
        })
      ),

    recordDispatch: (results) =>
      results.length === 0
        ? Effect.void
        : run(sql`select scheduler_record_dispatch(${JSON.stringify(results)}::jsonb)`).pipe(Effect.asVoid)
  }

  return api
})

const encodeCandidates = (candidates: ReadonlyArray<Candidate>): string => JSON.stringify(candidates)

export const layer: Layer.Layer<Store, never, SqlClient.SqlClient> = Layer.effect(Store, makeSqlStore)
