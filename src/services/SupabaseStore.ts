import { createClient } from "@supabase/supabase-js"
import { Array as Arr, Config, Data, Effect, Layer, Option, Redacted, Ref, Schema } from "effect"
import {
  DatabaseError,
  type DatabaseErrorReason,
  databaseErrorMessage,
  databaseErrorReason,
  type InvalidConfigError
} from "../domain/Errors.ts"
import { type Candidate, ClaimedNotification, EvaluationRow, ReclaimedNotification } from "../domain/Evaluation.ts"
import type { PushTicket } from "../domain/Receipts.ts"
import { allScenarioTypes, type ScenarioType } from "../domain/Scenario.ts"
import { environmentError, fromConfigError, httpUrl, integerBetween, optionalSecret } from "./EnvironmentConfig.ts"
import { logEvent } from "./Logger.ts"
import {
  type Claim,
  type Evaluation,
  finishedRunStats,
  type InvalidRow,
  type MentorRange,
  type Reclaim,
  type ReclaimOptions,
  Store,
  type StoreApi,
  type StoreError
} from "./Store.ts"
import { decodeAll, decodeEach, OpenRunRow, PageRow, TicketRow, ticketRow } from "./StoreRows.ts"

/**
 * The store over Supabase's Data API: every call is `supabase.rpc(...)` of the same SQL functions the
 * SQL store runs, with the service role (or secret) key, so the evaluation and claim logic is the
 * database's in both.
 *
 * PostgREST answers at most `max-rows` rows (1,000 on Supabase unless changed) and cuts longer
 * answers silently. So no call here may need more rows than that: pages are asked for at most the
 * cap, evaluations are split so that every call's rows fit (a mentor yields at most one row per
 * scenario), claims and take-overs are split or limited the same way. Every call that returns rows
 * asks for the exact count, and an answer shorter than its count is never taken as complete: the
 * store learns the real cap from it and asks again in smaller calls where that is safe, and fails
 * the call where it is not (a claim has already inserted its rows).
 */

/** Supabase's default for the API's "max rows" setting. */
export const DEFAULT_MAX_ROWS = 1000

export interface SupabaseStoreOptions {
  /** The project's API URL, e.g. `https://<ref>.supabase.co`. */
  readonly url: string
  /** The service role key or a secret key: the scheduler's functions are granted to service_role only. */
  readonly key: Redacted.Redacted<string>
  /** The project's "max rows" setting; a smaller real cap is detected and adopted. */
  readonly maxRows: number
  readonly requestTimeoutMs: number
}

/** An answer PostgREST cut at its row cap: `returned` rows of `total`. */
class RowsCapped extends Data.TaggedError("RowsCapped")<{
  readonly fn: string
  readonly returned: number
  readonly total: number
}> {}

interface RpcAnswer {
  readonly data: unknown
  readonly count: number | null
}

/** Only `code` and `message` are read: `details` and `hint` may quote row values, which can be personal data. */
const PostgrestFailure = Schema.Struct({
  code: Schema.optional(Schema.NullOr(Schema.String)),
  message: Schema.optional(Schema.NullOr(Schema.String))
})

const isUnavailableStatus = (status: number): boolean =>
  status === 0 || status === 502 || status === 503 || status === 504

/**
 * PostgREST's own codes: PGRST0xx it cannot reach the database, PGRST2xx its schema cache lacks what
 * was asked for (a function not migrated), PGRST3xx the key or JWT was refused. Anything else is
 * classified by its SQLSTATE, as a direct connection's error would be.
 */
const reasonOf = (code: string | undefined, status: number, message: string): DatabaseErrorReason => {
  if (isUnavailableStatus(status) || (code !== undefined && /^PGRST0/.test(code))) return "unavailable"
  if (status === 401 || status === 403 || (code !== undefined && /^PGRST[23]/.test(code))) return "schema"
  return code === undefined || code.startsWith("PGRST") ? "query" : databaseErrorReason(code, message)
}

/** Turns PostgREST's `{ error }` into the program's DatabaseError from its code and message only. */
export const fromPostgrestError = (error: unknown, status: number): DatabaseError => {
  const failure = Option.getOrElse(Schema.decodeUnknownOption(PostgrestFailure)(error), () => ({
    code: undefined,
    message: undefined
  }))
  const code = failure.code === null || failure.code === "" ? undefined : failure.code
  const message = failure.message || (status === 0 ? "the Supabase API could not be reached" : `HTTP ${status}`)
  const reason = reasonOf(code, status, message)

  // PostgREST's own messages name no data; a SQLSTATE's message is the server's, as over a direct connection.
  const isSqlState = code !== undefined && !code.startsWith("PGRST")
  return new DatabaseError({
    reason,
    code,
    message: isSqlState ? databaseErrorMessage(reason, code, message) : message
  })
}

const cappedError = (capped: RowsCapped, rest: string) =>
  new DatabaseError({
    reason: "query",
    message: `PostgREST cut the answer of ${capped.fn} at ${capped.returned} of ${capped.total} rows; ${rest}`
  })

const missingCount = (fn: string) =>
  new DatabaseError({ reason: "query", message: `PostgREST answered ${fn} without the row count it was asked for` })

const notRows = (fn: string) => new DatabaseError({ reason: "query", message: `PostgREST answered ${fn} without rows` })

const CountAnswer = Schema.Union(Schema.Number, Schema.NumberFromString)

/** A scalar function's answer: PostgREST sends the value itself as JSON. */
const decodeScalar = <A, I>(schema: Schema.Schema<A, I>, fn: string, data: unknown) =>
  Effect.mapError(
    Schema.decodeUnknown(schema)(data),
    () => new DatabaseError({ reason: "query", message: `${fn} answered a value of the wrong type` })
  )

/** Builds the store; the client is created here, so the key is unwrapped only for it. */
export const make = (options: SupabaseStoreOptions) =>
  Effect.gen(function* () {
    const client = createClient(options.url, Redacted.value(options.key), {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      global: { headers: { "x-client-info": "scenario-scheduler" } }
    })
    const cap = yield* Ref.make(options.maxRows)

    const call = (fn: string, args: Record<string, unknown>, counted: boolean) =>
      Effect.tryPromise({
        try: async (signal) => {
          const timeout = AbortSignal.timeout(options.requestTimeoutMs)
          const request = client.rpc(fn, args, counted ? { count: "exact" } : {})
          return await request.abortSignal(AbortSignal.any([signal, timeout]))
        },
        catch: () => new DatabaseError({ reason: "unavailable", message: `the call of ${fn} did not complete` })
      }).pipe(
        Effect.flatMap((answer) =>
          answer.error
            ? Effect.fail(fromPostgrestError(answer.error, answer.status))
            : Effect.succeed<RpcAnswer>({ data: answer.data, count: answer.count })
        ),
        Effect.withSpan("SupabaseStore.rpc", { attributes: { fn } })
      )

    /** Rows of a set-returning function, failing with RowsCapped when PostgREST's count says some are missing. */
    const rows = (
      fn: string,
      args: Record<string, unknown>
    ): Effect.Effect<ReadonlyArray<unknown>, DatabaseError | RowsCapped> =>
      Effect.flatMap(
        call(fn, args, true),
        ({ data, count }): Effect.Effect<ReadonlyArray<unknown>, DatabaseError | RowsCapped> => {
          if (!Array.isArray(data)) return Effect.fail(notRows(fn))
          if (count === null) return Effect.fail(missingCount(fn))
          if (count > data.length) return Effect.fail(new RowsCapped({ fn, returned: data.length, total: count }))
          return Effect.succeed(data as ReadonlyArray<unknown>)
        }
      )

    /**
     * Lowers the cap to what the server really answered. True when it went down, so that a smaller
     * call can be tried; false when nothing smaller can help.
     */
    const learnCap = (capped: RowsCapped) =>
      Effect.gen(function* () {
        const before = yield* Ref.get(cap)
        yield* logEvent("warn", "postgrest_rows_capped", {
          function: capped.fn,
          returned: capped.returned,
          total: capped.total,
          max_rows: before
        })

        if (capped.returned === 0 || capped.returned >= before) return false
        yield* Ref.set(cap, capped.returned)
        return true
      })

    /** A stable function's rows: when they are cut, asked again with the lowered cap through `retry`. */
    const stableRows = <A>(
      fn: string,
      args: Record<string, unknown>,
      decode: (rows: ReadonlyArray<unknown>) => A,
      retry: () => Effect.Effect<A, DatabaseError>
    ): Effect.Effect<A, DatabaseError> =>
      rows(fn, args).pipe(
        Effect.map(decode),
        Effect.catchTag("RowsCapped", (capped) =>
          Effect.flatMap(learnCap(capped), (lowered) =>
            lowered ? retry() : Effect.fail(cappedError(capped, "smaller calls cannot help"))
          )
        )
      )

    /** A volatile function's rows: its effect has happened, so cut rows cannot be asked for again. */
    const volatileRows = (
      fn: string,
      args: Record<string, unknown>,
      lost: string
    ): Effect.Effect<ReadonlyArray<unknown>, DatabaseError> =>
      rows(fn, args).pipe(
        Effect.catchTag("RowsCapped", (capped) =>
          Effect.zipRight(learnCap(capped), Effect.fail(cappedError(capped, lost)))
        )
      )

    const activeRows = (range: MentorRange, limit: number): Effect.Effect<ReadonlyArray<unknown>, DatabaseError> =>
      Effect.flatMap(Ref.get(cap), (maxRows) =>
        stableRows(
          "scheduler_active_page",
          { p_after: range.after, p_until: range.until, p_limit: Math.min(limit, maxRows) },
          (answer) => answer,
          () => activeRows(range, limit)
        )
      )

    // A shorter page than asked for is fine: the program goes on from its last mentor.
    const activePage = (range: MentorRange, limit: number): Effect.Effect<ReadonlyArray<string>, StoreError> =>
      activeRows(range, limit).pipe(
        Effect.flatMap(decodeAll(PageRow, "peer_mentors")),
        Effect.map((page) => page.map((row) => row.user_id))
      )

    const evaluateCall = (
      userIds: ReadonlyArray<string>,
      now: Date,
      scenarios: ReadonlyArray<ScenarioType>
    ): Effect.Effect<Evaluation, DatabaseError> =>
      stableRows(
        "scheduler_evaluate",
        { p_user_ids: userIds, p_now: now.toISOString(), p_scenarios: scenarios },
        (answer): Evaluation => {
          const { invalid, valid } = decodeEach(EvaluationRow, "scheduler_evaluate", answer)
          return { rows: valid, invalid }
        },
        () => evaluate(userIds, now, scenarios)
      )

    // A mentor yields one row per requested scenario at most: a verdict, a config error, or one row for the mentor.
    const evaluate = (
      userIds: ReadonlyArray<string>,
      now: Date,
      scenarios: ReadonlyArray<ScenarioType>
    ): Effect.Effect<Evaluation, DatabaseError> =>
      Effect.gen(function* () {
        const rowsPerMentor = Math.max(1, new Set(scenarios).size)
        const mentorsPerCall = Math.max(1, Math.floor((yield* Ref.get(cap)) / rowsPerMentor))
        const answers = yield* Effect.forEach(Arr.chunksOf(userIds, mentorsPerCall), (chunk) =>
          evaluateCall(chunk, now, scenarios)
        )

        return { rows: answers.flatMap((answer) => answer.rows), invalid: answers.flatMap((answer) => answer.invalid) }
      })

    // A claim answers one row per candidate it inserted, so calls of at most `cap` candidates always fit.
    //
    // Each call is its own transaction. When one of several fails, the calls that succeeded keep their claims
    // and only the failed call's candidates are reported as failed: failing the whole claim would have the
    // program claim them all again and take its own fresh claims for duplicates.
    const claim = (invocationId: string, candidates: ReadonlyArray<Candidate>): Effect.Effect<Claim, DatabaseError> =>
      Effect.gen(function* () {
        const chunks = Arr.chunksOf(candidates, yield* Ref.get(cap))
        const claimChunk = (chunk: ReadonlyArray<Candidate>) =>
          volatileRows(
            "scheduler_claim",
            { p_invocation_id: invocationId, p_candidates: chunk },
            "the rest are claimed and stay pending until a later run takes them over"
          ).pipe(
            Effect.map((answer) => ({ ...decodeEach(ClaimedNotification, "scheduler_claim", answer), failed: [] }))
          )

        const answers = yield* Effect.forEach(chunks, (chunk) =>
          chunks.length === 1
            ? claimChunk(chunk)
            : claimChunk(chunk).pipe(
                Effect.catchIf(
                  (error) => error.reason === "query",
                  (error) =>
                    Effect.succeed({ valid: [], invalid: [], failed: chunk.map((candidate) => ({ candidate, error })) })
                )
              )
        )

        return {
          claimed: answers.flatMap((answer) => answer.valid),
          invalid: answers.flatMap((answer): ReadonlyArray<InvalidRow> => answer.invalid),
          failed: answers.flatMap((answer) => answer.failed)
        } satisfies Claim
      })

    const reclaim = (invocationId: string, reclaimOptions: ReclaimOptions): Effect.Effect<Reclaim, DatabaseError> =>
      Effect.gen(function* () {
        const answer = yield* volatileRows(
          "scheduler_reclaim",
          {
            p_invocation_id: invocationId,
            p_lease_seconds: reclaimOptions.leaseSeconds,
            p_limit: Math.min(reclaimOptions.limit, yield* Ref.get(cap)),
            p_max_attempts: reclaimOptions.maxAttempts
          },
          "the rest are taken over and wait for the next run"
        )
        const { invalid, valid } = decodeEach(ReclaimedNotification, "scheduler_reclaim", answer)
        return { reclaimed: valid, invalid } satisfies Reclaim
      })

    // Asked for at most the cap, so that the oldest tickets always come in one answer.
    const dueRows = (olderThanSeconds: number, limit: number): Effect.Effect<ReadonlyArray<unknown>, DatabaseError> =>
      Effect.flatMap(Ref.get(cap), (maxRows) =>
        stableRows(
          "scheduler_due_tickets",
          { p_older_than_seconds: olderThanSeconds, p_limit: Math.min(limit, maxRows) },
          (answer) => answer,
          () => dueRows(olderThanSeconds, limit)
        )
      )

    const dueTickets = (
      olderThanSeconds: number,
      limit: number
    ): Effect.Effect<ReadonlyArray<PushTicket>, StoreError> =>
      dueRows(olderThanSeconds, limit).pipe(
        Effect.flatMap(decodeAll(TicketRow, "push_receipts")),
        Effect.map((answer) => answer.map((row) => ({ ticketId: row.ticket_id, tokenId: row.token_id })))
      )

    const api: StoreApi = {
      openRun: (invocationId, startedAt, lock) =>
        rows("scheduler_open_run", {
          p_invocation_id: invocationId,
          p_started_at: startedAt.toISOString(),
          p_overlap: lock.overlap,
          p_lease_seconds: lock.leaseSeconds
        }).pipe(
          Effect.catchTag("RowsCapped", (capped) => Effect.fail(cappedError(capped, "a run opens with one row"))),
          Effect.flatMap(decodeAll(OpenRunRow, "scheduler_runs")),
          Effect.map((answer) => ({
            resumeCursor: answer[0]?.resume_cursor ?? null,
            lockedBy: answer[0]?.locked_by ?? null,
            abandoned: answer[0]?.abandoned ?? []
          }))
        ),

      renewRun: (invocationId) =>
        call("scheduler_renew_run", { p_invocation_id: invocationId }, false).pipe(
          Effect.flatMap(({ data }) => decodeScalar(Schema.Boolean, "scheduler_renew_run", data))
        ),

      finishRun: (finished) =>
        call(
          "scheduler_finish_run",
          {
            p_invocation_id: finished.invocationId,
            p_finished_at: finished.finishedAt.toISOString(),
            p_outcome: finished.outcome,
            p_stats: finishedRunStats(finished),
            p_resume_cursor: finished.resumeCursor
          },
          false
        ).pipe(Effect.asVoid),

      recordCoverage: (coverage, evaluatedAt) =>
        coverage.length === 0
          ? Effect.void
          : call(
              "scheduler_record_coverage",
              {
                p_coverage: coverage.map((entry) => ({
                  organisation_id: entry.organisationId,
                  scenario_type: entry.scenarioType,
                  evaluated: entry.evaluated
                })),
                p_evaluated_at: evaluatedAt.toISOString()
              },
              false
            ).pipe(Effect.asVoid),

      countActive: (range) =>
        call("scheduler_count_active", { p_after: range.after, p_until: range.until }, false).pipe(
          Effect.flatMap(({ data }) => decodeScalar(CountAnswer, "scheduler_count_active", data))
        ),

      activePage,
      evaluate,
      claim,
      reclaim,

      markSending: (invocationId, notificationIds) =>
        notificationIds.length === 0
          ? Effect.void
          : call(
              "scheduler_mark_sending",
              { p_invocation_id: invocationId, p_notification_ids: notificationIds },
              false
            ).pipe(Effect.asVoid),

      recordDispatch: (invocationId, results) =>
        results.length === 0
          ? Effect.void
          : call("scheduler_record_dispatch", { p_invocation_id: invocationId, p_results: results }, false).pipe(
              Effect.asVoid
            ),

      recordTickets: (tickets) =>
        tickets.length === 0
          ? Effect.void
          : call("scheduler_record_tickets", { p_tickets: tickets.map(ticketRow) }, false).pipe(Effect.asVoid),

      dueTickets,

      settleTickets: (ticketIds, revokeTokenIds) =>
        ticketIds.length === 0
          ? Effect.void
          : call(
              "scheduler_settle_tickets",
              { p_ticket_ids: ticketIds, p_revoke_token_ids: revokeTokenIds },
              false
            ).pipe(Effect.asVoid)
    }

    return api
  })

export const layer = (options: SupabaseStoreOptions): Layer.Layer<Store> => Layer.effect(Store, make(options))

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const positiveInteger = (name: string, min: number, fallback: number) =>
  integerBetween(name, min).pipe(Config.withDefault(fallback))

export const settings = Config.all({
  url: httpUrl("SUPABASE_URL"),
  secretKey: optionalSecret("SUPABASE_SECRET_KEY"),
  secretKeys: optionalSecret("SUPABASE_SECRET_KEYS"),
  serviceRoleKey: optionalSecret("SUPABASE_SERVICE_ROLE_KEY"),
  // Below one row per scenario, a single mentor's evaluation could not be answered at all.
  maxRows: positiveInteger("SUPABASE_MAX_ROWS", allScenarioTypes.length, DEFAULT_MAX_ROWS),
  requestTimeoutMs: positiveInteger("SUPABASE_REQUEST_TIMEOUT_MS", 1, 20_000)
})

const KeyDictionary = Schema.Record({ key: Schema.String, value: Schema.String })

/**
 * `SUPABASE_SECRET_KEYS` is a JSON object of named secret keys, as Supabase sets it for Edge
 * Functions: the one named `default` is used, or the only one. Parse failures name no value.
 */
const keyFromDictionary = (
  text: Redacted.Redacted<string>
): Effect.Effect<Redacted.Redacted<string>, InvalidConfigError> =>
  Effect.try({
    try: () => JSON.parse(Redacted.value(text)) as unknown,
    catch: () => environmentError("SUPABASE_SECRET_KEYS is not a JSON object of keys")
  }).pipe(
    Effect.flatMap((parsed) =>
      Option.match(Schema.decodeUnknownOption(KeyDictionary)(parsed), {
        onNone: () => Effect.fail(environmentError("SUPABASE_SECRET_KEYS is not a JSON object of keys")),
        onSome: (keys) => {
          const names = Object.keys(keys)
          const name = "default" in keys ? "default" : names.length === 1 ? names[0] : undefined
          return name === undefined
            ? Effect.fail(environmentError("SUPABASE_SECRET_KEYS holds several keys and none named default"))
            : Effect.succeed(Redacted.make(keys[name] as string))
        }
      })
    )
  )

/** The newer secret keys win over the legacy service role key, which a project may have turned off. */
const keyOf = (
  found: Config.Config.Success<typeof settings>
): Effect.Effect<Redacted.Redacted<string>, InvalidConfigError> => {
  if (Option.isSome(found.secretKey)) return Effect.succeed(found.secretKey.value)
  if (Option.isSome(found.secretKeys)) return keyFromDictionary(found.secretKeys.value)
  if (Option.isSome(found.serviceRoleKey)) return Effect.succeed(found.serviceRoleKey.value)
  return Effect.fail(
    environmentError("the Supabase store needs SUPABASE_SECRET_KEY, SUPABASE_SECRET_KEYS or SUPABASE_SERVICE_ROLE_KEY")
  )
}

/** The store's options from the environment. */
export const options: Effect.Effect<SupabaseStoreOptions, InvalidConfigError> = Effect.gen(function* () {
  const found = yield* Effect.mapError(settings, fromConfigError)
  const key = yield* keyOf(found)

  return { url: found.url, key, maxRows: found.maxRows, requestTimeoutMs: found.requestTimeoutMs }
})

/** The store configured from the environment (SUPABASE_URL, a key, SUPABASE_MAX_ROWS). */
export const layerConfig: Layer.Layer<Store, InvalidConfigError> = Layer.unwrapEffect(Effect.map(options, layer))
