import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted } from "effect"
import { seed } from "../adapters/cli/Seed.ts"
import { runScheduler } from "../src/program/Scheduler.ts"
import * as OutboxProvider from "../src/services/OutboxProvider.ts"
import * as PostgresClient from "../src/services/PostgresClient.ts"
import * as SqlStore from "../src/services/SqlStore.ts"
import type { OverlapPolicy } from "../src/services/Store.ts"
import { makeLogCapture } from "./support/captureLogs.ts"
import { runCli } from "./support/cli.ts"
import { describeServer, postgresLayer, TestDatabase } from "./support/databases.ts"
import { jsonLines, temporaryDirectory } from "./support/processes.ts"
import { now, recordingProvider, runOnce, runOptions } from "./support/runs.ts"

/**
 * Eight runs started at the same moment against one server database of 2,000 mentors: as Effect fibers, each with
 * a connection pool of its own, and as separate CLI processes. With the lock, one run works and the others stand
 * down; without it, they race, and the claim's unique keys alone keep every notification single.
 */

const runs = 8

type Log = ReadonlyArray<Record<string, unknown>>

interface Completion {
  readonly invocation_id: string
  readonly outcome: string
  readonly dispatched: number
  readonly suppressed_by: Readonly<Record<string, number>>
}

const completionOf = (log: Log) =>
  log.find((entry) => entry.event === "scheduler_run_completed") as unknown as Completion

/** Notifications due in the fresh database, counted by a dry run (which claims and sends nothing). */
const dueNotifications = Effect.gen(function* () {
  const { completed } = yield* runOnce(runOptions({ dryRun: true }), recordingProvider().layer)
  return (completed.suppressed_by as Record<string, number>).dry_run
})

const freshRuns = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`delete from scenario_notifications`
  yield* sql`delete from scheduler_runs`
})

/** Runs as fibers, each with its own pool, built before any of them starts so that they all open at once. */
const fiberRuns = (url: string, outbox: string, overlap: OverlapPolicy) =>
  Effect.gen(function* () {
    const services = yield* Effect.forEach(Array.from({ length: runs }), () =>
      Layer.build(
        Layer.merge(
          SqlStore.layer.pipe(Layer.provide(PostgresClient.layer(Redacted.make(url), "scenario-scheduler-tests"))),
          OutboxProvider.layer(outbox)
        )
      )
    )

    return yield* Effect.forEach(
      services,
      (context) =>
        Effect.gen(function* () {
          const capture = makeLogCapture()
          yield* runScheduler(runOptions({ overlap }), Layer.succeedContext(context)).pipe(
            Effect.provide(capture.layer)
          )
          return capture.entries()
        }),
      { concurrency: "unbounded" }
    )
  }).pipe(Effect.scoped)

const processRuns = (url: string, cwd: string, overlap: OverlapPolicy) =>
  Effect.promise(() =>
    Promise.all(
      Array.from({ length: runs }, () =>
        runCli(["run", "--now", now.toISOString(), "--overlap", overlap], { cwd, env: { DATABASE_URL: url } })
      )
    )
  ).pipe(
    Effect.tap((results) => expect(results.map((result) => result.code)).toEqual(Array(runs).fill(0))),
    Effect.map((results) => results.map((result) => result.entries))
  )

/** Exactly one notification per mentor, scenario and window, every due one delivered once, and the logs agree. */
const expectEachNotificationOnce = (logs: ReadonlyArray<Log>, outboxPath: string, due: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [counts] = yield* sql<{ rows: number; dispatched: number; keys: number }>`
      select count(*)::int as rows,
        count(*) filter (where status = 'dispatched')::int as dispatched,
        count(distinct (user_id, scenario_type, cooldown_window_start))::int as keys
      from scenario_notifications`
    const outbox = yield* Effect.promise(() => jsonLines(outboxPath))

    expect(counts).toEqual({ rows: due, dispatched: due, keys: due })
    expect(logs.reduce((sum, log) => sum + completionOf(log).dispatched, 0)).toBe(due)
    expect(outbox).toHaveLength(due)
    expect(new Set(outbox.map((line) => line.notification_id)).size).toBe(due)
    expect(new Set(outbox.map((line) => `${line.user_id}:${line.scenario_type}`)).size).toBe(due)
  })

/** Under the skip policy one run works; those that found it running stand down and name it. */
const expectOneRunWorked = (logs: ReadonlyArray<Log>) => {
  const outcomes = logs.map((log) => completionOf(log).outcome)
  const worked = logs.filter((log) => completionOf(log).outcome === "completed")
  const holders = logs.flatMap((log) =>
    log.filter((entry) => entry.event === "scheduler_run_skipped").map((entry) => entry.holder_invocation_id)
  )

  expect(outcomes.filter((outcome) => outcome !== "completed" && outcome !== "skipped")).toEqual([])
  expect(worked.length).toBeGreaterThanOrEqual(1)
  expect(holders).toHaveLength(runs - worked.length)
  for (const holder of holders) {
    expect(worked.map((log) => completionOf(log).invocation_id)).toContain(holder)
  }
}

/**
 * Without the lock every run judges every mentor. What a run did not send, another had claimed: it shows as a
 * duplicate (lost the race to claim), as a cooldown (the other claim was already there), or not at all (a milestone
 * another run claimed is no longer due).
 */
const expectEveryRunCompleted = (logs: ReadonlyArray<Log>, due: number) => {
  for (const log of logs) {
    const completed = completionOf(log)
    expect(completed).toMatchObject({ outcome: "completed", errors: 0, failed: 0 })
    expect(
      completed.dispatched + completed.suppressed_by.duplicate + completed.suppressed_by.cooldown
    ).toBeLessThanOrEqual(due)
  }
}

describeServer("eight runs at once on one database", () => {
  layer(postgresLayer, { timeout: Duration.minutes(3), excludeTestServices: true })((it) => {
    let due = 0

    it.effect("seeds 2,000 mentors", () =>
      Effect.gen(function* () {
        yield* seed({ mentors: 2_000, randomSeed: 11, now })
        due = yield* dueNotifications
        expect(due).toBeGreaterThan(500)
      })
    )

    it.scoped("as fibers under the lock: one run works, seven stand down, each notification once", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { url } = yield* TestDatabase
        const outbox = join(yield* temporaryDirectory, "outbox.jsonl")
        yield* freshRuns

        const logs = yield* fiberRuns(url, outbox, "skip")

        expectOneRunWorked(logs)
        expect(logs.filter((log) => completionOf(log).outcome === "skipped")).toHaveLength(runs - 1)
        yield* expectEachNotificationOnce(logs, outbox, due)
        const rows = yield* sql<{ outcome: string; count: number }>`
          select outcome, count(*)::int as count from scheduler_runs group by outcome order by outcome`
        expect(rows).toEqual([
          { outcome: "completed", count: 1 },
          { outcome: "skipped", count: runs - 1 }
        ])
      })
    )

    it.scoped("as fibers with the lock disabled: all eight race, no row and no delivery twice", () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase
        const outbox = join(yield* temporaryDirectory, "outbox.jsonl")
        yield* freshRuns

        const logs = yield* fiberRuns(url, outbox, "allow")

        expectEveryRunCompleted(logs, due)
        yield* expectEachNotificationOnce(logs, outbox, due)
      })
    )

    it.scoped("as CLI processes with --overlap allow: no row and no delivery twice", () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase
        const cwd = yield* temporaryDirectory
        yield* freshRuns

        const logs = yield* processRuns(url, cwd, "allow")

        expectEveryRunCompleted(logs, due)
        yield* expectEachNotificationOnce(logs, join(cwd, ".scenario-scheduler", "outbox.jsonl"), due)
      })
    )
  })
})
