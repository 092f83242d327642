import { randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { assert, expect, it } from "@effect/vitest"
import { type Context, Effect, Layer, Redacted } from "effect"
import { seed } from "../adapters/cli/Seed.ts"
import type { SchedulerError } from "../src/domain/Errors.ts"
import { defaultRunOptions, type RunOptions } from "../src/program/RunOptions.ts"
import { runScheduler } from "../src/program/Scheduler.ts"
import * as OutboxProvider from "../src/services/OutboxProvider.ts"
import * as PostgresClient from "../src/services/PostgresClient.ts"
import type { PushProvider } from "../src/services/PushProvider.ts"
import * as SqlStore from "../src/services/SqlStore.ts"
import type { Store, StoreError } from "../src/services/Store.ts"
import * as SupabaseStore from "../src/services/SupabaseStore.ts"
import { makeLogCapture } from "./support/captureLogs.ts"
import { describeServer, postgresLayer, TestDatabase } from "./support/databases.ts"
import { type PostgrestStandIn, postgrestStandIn } from "./support/postgrest.ts"

/**
 * The scheduler through supabase-js against a stand-in for Supabase's Data API on a real database,
 * compared with the SQL store on an identical database: the same notifications, the same counts.
 */

const now = new Date("2026-12-04T07:00:00Z")
const timeout = { timeout: 120_000 }

type Database = Context.Context<SqlClient.SqlClient | TestDatabase>

/** A database of its own on the server, seeded with the demo population, with one broken zone. */
const seededDatabase = Effect.gen(function* () {
  const database: Database = yield* Layer.build(Layer.fresh(postgresLayer))

  yield* Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* seed({ mentors: 300, randomSeed: 5, now })
    // The smallest organisation's zone is broken: its mentors are judged as errors, the others as usual.
    const [smallest] = yield* sql<{ id: string }>`
      select o.id from organisations as o join peer_mentors as m on m.organisation_id = o.id
      group by o.id order by count(*), o.id limit 1`
    yield* sql`update organisations set timezone = 'Mars/Olympus_Mons' where id = ${smallest?.id ?? ""}`
  }).pipe(Effect.provide(database))

  return database
})

const urlOf = (database: Database) => Effect.map(Effect.provide(TestDatabase, database), ({ url }) => url)

const outbox = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "scenario-scheduler-outbox-"))),
  (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
).pipe(Effect.map((directory) => OutboxProvider.layer(join(directory, "outbox.jsonl"))))

const runOptions = (overrides: Partial<RunOptions> = {}): RunOptions => ({
  ...defaultRunOptions,
  invocationId: randomUUID(),
  now,
  budgetMs: 60_000,
  ...overrides
})

const run = (store: Layer.Layer<Store, SchedulerError>, options: RunOptions) =>
  Effect.gen(function* () {
    const capture = makeLogCapture()
    const services: Layer.Layer<Store | PushProvider, SchedulerError> = Layer.merge(store, yield* outbox)
    const summary = yield* runScheduler(options, services).pipe(Effect.provide(capture.layer))
    return { summary, entries: capture.entries(), output: capture.lines().join("") }
  })

const sqlStoreOn = (database: Database) =>
  Effect.map(urlOf(database), (url) =>
    SqlStore.layer.pipe(
      Layer.provide(PostgresClient.layer(Redacted.make(url)).pipe(Layer.mapError(SqlStore.fromSqlError)))
    )
  )

const supabaseStoreOn = (standIn: PostgrestStandIn, maxRows: number, key = standIn.serviceKey) =>
  SupabaseStore.layer({ url: standIn.url, key: Redacted.make(key), maxRows, requestTimeoutMs: 10_000 })

/** What a run left in the database, without the ids and times that differ between any two runs. */
const snapshot = (database: Database) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const notifications = yield* sql`
      select user_id::text, scenario_type, to_char(evaluation_date, 'YYYY-MM-DD') as evaluation_date,
        to_char(cooldown_window_start, 'YYYY-MM-DD') as cooldown_window_start, idempotency_key, status, payload,
        attempts, last_error_type, dispatched_at is not null as dispatched
      from scenario_notifications order by idempotency_key`
    const revoked = yield* sql`select token from push_tokens where revoked_at is not null order by token`
    // Pages are shorter under a row cap, so their number may differ.
    const runs = yield* sql`
      select outcome, stats - 'pages_processed' as stats, resume_cursor::text from scheduler_runs order by started_at`
    return { notifications, revoked, runs }
  }).pipe(Effect.provide(database))

const activeMentors = (database: Database) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ count: number }>`select count(*)::int as count from peer_mentors where status = 'active'`
    return rows[0]?.count ?? 0
  }).pipe(Effect.provide(database))

/** Runs the same options through both stores, each on its own copy of the data, twice (the second day's run suppressed). */
const compareStores = (serverMaxRows: number, storeMaxRows: number, pageSize: number) =>
  Effect.gen(function* () {
    const reference = yield* seededDatabase
    const subject = yield* seededDatabase
    const standIn = yield* postgrestStandIn({ databaseUrl: yield* urlOf(subject), maxRows: serverMaxRows })
    const sqlStore = yield* sqlStoreOn(reference)
    const supabaseStore = supabaseStoreOn(standIn, storeMaxRows)

    const expected = [yield* run(sqlStore, runOptions({ pageSize })), yield* run(sqlStore, runOptions({ pageSize }))]
    const actual = [
      yield* run(supabaseStore, runOptions({ pageSize })),
      yield* run(supabaseStore, runOptions({ pageSize }))
    ]

    return { expected, actual, standIn, reference, subject }
  })

const withoutPages = (result: { readonly summary: { readonly stats: object } } | undefined) => {
  const { pagesProcessed: _pages, ...stats } = (result?.summary.stats ?? {}) as Record<string, unknown>
  return stats
}

const databaseErrorOf = <A>(effect: Effect.Effect<A, StoreError>) =>
  Effect.flatMap(Effect.flip(effect), (error) =>
    error._tag === "DatabaseError"
      ? Effect.succeed(error)
      : Effect.dieMessage(`expected a DatabaseError: ${error.message}`)
  )

const rowsPerCall = (standIn: PostgrestStandIn, fn: string) =>
  standIn.calls.filter((call) => call.fn === fn).map((call) => call.returned ?? 0)

describeServer("the Supabase store over a PostgREST stand-in", () => {
  it.scopedLive(
    "leaves the same notifications and counts as the SQL store",
    () =>
      Effect.gen(function* () {
        const { expected, actual, reference, subject, standIn } = yield* compareStores(1000, 1000, 120)

        for (const [index, result] of actual.entries()) {
          assert.strictEqual(result.summary.outcome, "completed")
          assert.deepStrictEqual(result.summary.stats, expected[index]?.summary.stats)
        }
        expect(actual[0]?.summary.stats.dispatched).toBeGreaterThan(0)
        expect(actual[0]?.summary.stats.errors).toBeGreaterThan(0)
        expect(actual[1]?.summary.stats.suppressedBy.cooldown).toBeGreaterThan(0)
        assert.deepStrictEqual(yield* snapshot(subject), yield* snapshot(reference))
        assert.deepStrictEqual(
          standIn.calls.filter((call) => call.status >= 300),
          []
        )
      }),
    timeout
  )

  it.scopedLive(
    "splits every call under a tiny row cap and still reaches every mentor",
    () =>
      Effect.gen(function* () {
        const { expected, actual, reference, subject, standIn } = yield* compareStores(7, 7, 500)

        assert.strictEqual(actual[0]?.summary.outcome, "completed")
        assert.strictEqual(actual[0]?.summary.stats.evaluated, yield* activeMentors(subject))
        // Pages are shorter under the cap, so there are more of them; everything else is the same.
        assert.deepStrictEqual(withoutPages(actual[0]), withoutPages(expected[0]))
        assert.strictEqual(actual[0]?.summary.stats.pagesProcessed, Math.ceil((yield* activeMentors(subject)) / 7))
        assert.deepStrictEqual(yield* snapshot(subject), yield* snapshot(reference))
        // No answer was cut: every call asked for what fits under the cap.
        assert.deepStrictEqual(
          standIn.calls.filter((call) => call.total !== undefined && call.total > (call.returned ?? 0)),
          []
        )
        expect(Math.max(...rowsPerCall(standIn, "scheduler_active_page"))).toBe(7)
        expect(Math.max(...rowsPerCall(standIn, "scheduler_claim"))).toBeLessThanOrEqual(7)
      }),
    timeout
  )

  it.scopedLive(
    "notices a server cap below its own, adopts it, and is never complete with fewer mentors",
    () =>
      Effect.gen(function* () {
        const { expected, actual, reference, subject, standIn } = yield* compareStores(7, 1000, 500)

        assert.strictEqual(actual[0]?.summary.outcome, "completed")
        assert.strictEqual(actual[0]?.summary.stats.evaluated, yield* activeMentors(subject))
        assert.deepStrictEqual(withoutPages(actual[0]), withoutPages(expected[0]))
        assert.deepStrictEqual(yield* snapshot(subject), yield* snapshot(reference))
        expect(actual[0]?.entries.filter((entry) => entry.event === "postgrest_rows_capped")).toEqual([
          expect.objectContaining({ level: "warn", function: "scheduler_active_page", returned: 7, max_rows: 1000 })
        ])
        // In each of the two runs only the first page was cut, before anything was claimed: each run's store
        // starts from its configuration and learns the server's cap anew.
        assert.deepStrictEqual(
          standIn.calls
            .filter((call) => call.total !== undefined && call.total > (call.returned ?? 0))
            .map((c) => c.fn),
          ["scheduler_active_page", "scheduler_active_page"]
        )
      }),
    timeout
  )

  it.scopedLive(
    "keeps the personal data of a database error's details out of every log line",
    () =>
      Effect.gen(function* () {
        const subject = yield* seededDatabase
        const standIn = yield* postgrestStandIn({ databaseUrl: yield* urlOf(subject), maxRows: 1000 })
        const people = yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql.unsafe(`
            create function public.refuse_claim() returns trigger language plpgsql as $$
            declare mentor record;
            begin
              select full_name, email, phone into mentor from public.peer_mentors where user_id = new.user_id;
              raise exception 'claim refused by policy'
                using detail = format('mentor %s <%s>, %s', mentor.full_name, mentor.email, mentor.phone),
                  hint = format('ask %s', mentor.full_name);
            end $$;
            create trigger refuse_claim before insert on public.scenario_notifications
              for each row execute function public.refuse_claim();
          `)
          return yield* sql<{ full_name: string; email: string; phone: string | null }>`
            select full_name, email, phone from peer_mentors`
        }).pipe(Effect.provide(subject))

        const { entries, output } = yield* run(supabaseStoreOn(standIn, 1000), runOptions())

        const refusals = standIn.calls.filter((call) => call.fn === "scheduler_claim" && call.status >= 400)
        expect(refusals.length).toBeGreaterThan(0)
        expect(String(refusals[0]?.error?.details)).toMatch(/^mentor .+ <.+@.+>/)
        expect(entries.filter((entry) => entry.event === "mentor_evaluation_error")[0]).toMatchObject({
          error_type: "database_error",
          error_message: "statement failed with SQLSTATE P0001"
        })
        for (const person of people) {
          expect(output).not.toContain(person.full_name)
          expect(output).not.toContain(person.email)
          if (person.phone) expect(output).not.toContain(person.phone)
        }
      }),
    timeout
  )

  it.scopedLive(
    "turns PostgREST's refusals into database errors with their codes",
    () =>
      Effect.gen(function* () {
        const subject = yield* seededDatabase
        const standIn = yield* postgrestStandIn({ databaseUrl: yield* urlOf(subject), maxRows: 1000 })
        const storeWith = (key: string, url = standIn.url) =>
          SupabaseStore.make({ url, key: Redacted.make(key), maxRows: 1000, requestTimeoutMs: 5_000 })
        const everyone = { after: null, until: null }

        const asAnon = yield* databaseErrorOf((yield* storeWith(standIn.anonKey)).countActive(everyone))
        const badKey = yield* databaseErrorOf((yield* storeWith("not-a-key")).countActive(everyone))
        const unreachable = yield* databaseErrorOf(
          (yield* storeWith(standIn.serviceKey, "http://127.0.0.1:9")).countActive(everyone)
        )
        const counted = yield* (yield* storeWith(standIn.serviceKey)).countActive(everyone)

        assert.deepStrictEqual([asAnon._tag, asAnon.reason, asAnon.code], ["DatabaseError", "schema", "42501"])
        assert.deepStrictEqual([badKey.reason, badKey.message], ["schema", "Invalid API key"])
        assert.strictEqual(unreachable.reason, "unavailable")
        assert.strictEqual(counted, yield* activeMentors(subject))
      }),
    timeout
  )
})
