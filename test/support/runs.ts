/**
 * What the tests of overlapping, resumed and crashed runs share: a synthetic population written straight into the
 * database, a push provider that remembers what it sent, and one scheduler run over a store on a given SQL client
 * with its log captured.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { defaultRunOptions, type RunOptions } from "../../src/program/RunOptions.ts"
import { runScheduler } from "../../src/program/Scheduler.ts"
import { PushProvider, type PushRequest } from "../../src/services/PushProvider.ts"
import * as SqlStore from "../../src/services/SqlStore.ts"
import { Store, type StoreApi } from "../../src/services/Store.ts"
import { makeLogCapture } from "./captureLogs.ts"

/** The moment every synthetic run judges at. */
export const now = new Date("2026-12-04T06:00:00Z")

/** Empties every table the scheduler reads or writes, for a test that starts from nothing. */
export const resetDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`truncate scenario_notifications, scheduler_runs, push_tokens, mentor_activities, peer_mentors,
    scenario_evaluation_config, chapters, organisations cascade`
})

/**
 * An organisation of `count` active mentors, each due for exactly one notification (inactivity: joined 30 days
 * before `now`, no activity) and with one live push token. Answers the organisation's id.
 */
export const dueMentors = (count: number, organisationName = "Synthetic") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const [organisation] = yield* sql<{ id: string }>`
      insert into organisations (name, timezone) values (${organisationName}, 'Europe/Oslo') returning id`
    const id = organisation?.id as string
    yield* addMentors(id, count)
    return id
  })

/** Adds `count` due mentors to an organisation, with ids drawn at random (so anywhere in user_id order). */
export const addMentors = (organisationId: string, count: number, joined = new Date(now.getTime() - 30 * 86_400_000)) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ user_id: string }>`
      insert into peer_mentors (user_id, organisation_id, status, created_at)
      select gen_random_uuid(), ${organisationId}, 'active', ${joined.toISOString()}::timestamptz
      from generate_series(1, ${count}::integer)
      returning user_id`
    yield* sql`
      insert into push_tokens (user_id, token, platform)
      select m.user_id, 'ExponentPushToken[' || m.user_id::text || ']', 'expo'
      from peer_mentors as m
      left join push_tokens as t on t.user_id = m.user_id
      where m.organisation_id = ${organisationId} and t.id is null`
    return rows.map((row) => row.user_id)
  })

/** Adds one due mentor, with its push token, under a chosen id. */
export const addMentor = (organisationId: string, userId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const joined = new Date(now.getTime() - 30 * 86_400_000).toISOString()
    yield* sql`insert into peer_mentors (user_id, organisation_id, created_at)
      values (${userId}, ${organisationId}, ${joined}::timestamptz)`
    yield* sql`insert into push_tokens (user_id, token, platform)
      values (${userId}, ${`ExponentPushToken[${userId}]`}, 'expo')`
  })

/** A push provider that delivers everything and remembers each request. */
export const recordingProvider = () => {
  const sent: Array<PushRequest> = []
  const layer = Layer.succeed(
    PushProvider,
    PushProvider.of({
      name: "recording",
      send: (request) =>
        Effect.sync(() => {
          sent.push(request)
          return request.tokens.map((token) => ({ tokenId: token.id, outcome: "delivered" as const }))
        })
    })
  )
  return { sent, layer }
}

export const runOptions = (overrides: Partial<RunOptions> = {}): RunOptions => ({
  ...defaultRunOptions,
  invocationId: crypto.randomUUID(),
  now,
  ...overrides
})

/**
 * One run over the SQL store on the test's own client, with `wrap` to put a store of the test's in between and the
 * provider of the test's. Answers the summary and the captured log.
 */
export const runOnce = (
  options: RunOptions,
  provider: Layer.Layer<PushProvider>,
  wrap: (store: StoreApi) => StoreApi = (store) => store
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const capture = makeLogCapture()
    const store = Layer.effect(
      Store,
      SqlStore.makeSqlStore.pipe(Effect.map(wrap), Effect.provideService(SqlClient.SqlClient, sql))
    )

    const summary = yield* runScheduler(options, Layer.merge(store, provider)).pipe(Effect.provide(capture.layer))
    const entries = capture.entries()
    const events = (name: string) => entries.filter((entry) => entry.event === name)
    const completed = events("scheduler_run_completed")[0] as Record<string, unknown>
    return { summary, entries, events, completed }
  })

export interface RunRow {
  readonly invocation_id: string
  readonly outcome: string
  readonly finished_at: unknown
  readonly resume_cursor: string | null
  readonly stats: Record<string, unknown> | null
}

/** The run's row in `scheduler_runs`, stats parsed whatever the driver gives. */
export const runRow = (invocationId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<RunRow>`
      select invocation_id, outcome, finished_at, resume_cursor, stats
      from scheduler_runs where invocation_id = ${invocationId}`
    const row = rows[0]
    if (row === undefined) return undefined
    return { ...row, stats: typeof row.stats === "string" ? JSON.parse(row.stats) : row.stats } as RunRow
  })
