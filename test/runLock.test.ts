import { SqlClient } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect, TestClock, TestContext } from "effect"
import * as SqlStore from "../src/services/SqlStore.ts"
import type { StoreApi } from "../src/services/Store.ts"
import { describeEachDatabase } from "./support/databases.ts"
import { dueMentors, recordingProvider, resetDatabase, runOnce, runOptions, runRow } from "./support/runs.ts"

/** Another run that opened and is still going (or died without a word): it holds the lock. */
const openHolder = Effect.gen(function* () {
  const store = yield* SqlStore.makeSqlStore
  const holder = crypto.randomUUID()
  const opened = yield* store.openRun(holder, new Date(), { overlap: "skip", leaseSeconds: 600 })
  expect(opened.lockedBy).toBeNull()
  return holder
})

const notificationCount = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ count: number }>`select count(*)::int as count from scenario_notifications`
  return rows[0]?.count
})

describeEachDatabase("the run lock", (it) => {
  it.effect("stands a run down while another holds the lock, and says which run holds it", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(5)
      const holder = yield* openHolder
      const provider = recordingProvider()

      const options = runOptions()
      const { summary, entries, events } = yield* runOnce(options, provider.layer)

      expect(summary.outcome).toBe("skipped")
      expect(entries.map((entry) => entry.event)).toEqual([
        "scheduler_run_started",
        "scheduler_run_skipped",
        "scheduler_run_completed"
      ])
      expect(events("scheduler_run_skipped")[0]).toMatchObject({ level: "info", holder_invocation_id: holder })
      expect(events("scheduler_run_completed")[0]).toMatchObject({ outcome: "skipped", evaluated: 0, dispatched: 0 })
      expect(yield* runRow(options.invocationId)).toMatchObject({
        outcome: "skipped",
        finished_at: expect.anything(),
        stats: { skipped_by: holder, overlap: "skip", evaluated: 0 }
      })
      expect(yield* notificationCount).toBe(0)
      expect(provider.sent).toHaveLength(0)
    })
  )

  it.effect("takes the lock of a run that stopped renewing it, and closes that run as failed", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* resetDatabase
      yield* dueMentors(5)
      const crashed = yield* openHolder
      // Its last heartbeat is older than the lease (10 minutes): the process is gone.
      yield* sql`update scheduler_runs set heartbeat_at = now() - interval '11 minutes' where invocation_id = ${crashed}`

      const options = runOptions()
      const { summary, events } = yield* runOnce(options, recordingProvider().layer)

      expect(summary.outcome).toBe("completed")
      expect(summary.stats.dispatched).toBe(5)
      expect(events("abandoned_runs_closed")).toEqual([
        expect.objectContaining({ level: "warn", count: 1, invocation_ids: [crashed] })
      ])
      expect(yield* runRow(crashed)).toMatchObject({
        outcome: "failed",
        stats: { lease_expired: true, closed_by: options.invocationId }
      })
    })
  )

  it.effect("runs beside the holder under the allow policy, and only the claim keeps notifications single", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(5)
      const holder = yield* openHolder

      const forced = runOptions({ overlap: "allow" })
      const first = yield* runOnce(forced, recordingProvider().layer)
      const second = yield* runOnce(runOptions({ overlap: "allow" }), recordingProvider().layer)

      expect(first.summary.outcome).toBe("completed")
      expect(first.events("scheduler_run_started")[0]).toMatchObject({ overlap: "allow" })
      expect(first.summary.stats.dispatched).toBe(5)
      expect(second.summary.stats).toMatchObject({ dispatched: 0, suppressed: 5 })
      expect(yield* runRow(forced.invocationId)).toMatchObject({ outcome: "completed", stats: { overlap: "allow" } })
      expect(yield* runRow(holder)).toMatchObject({ outcome: "running" })
      expect(yield* notificationCount).toBe(5)
    })
  )

  it.effect("takes no lock for a dry run", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(3)
      yield* openHolder

      const dryRun = runOptions({ dryRun: true })
      const { summary } = yield* runOnce(dryRun, recordingProvider().layer)

      expect(summary.outcome).toBe("completed")
      expect(summary.stats.suppressedBy.dry_run).toBe(3)
      expect(yield* runRow(dryRun.invocationId)).toBeUndefined()
    })
  )

  it.effect("keeps the lock through a run longer than the lease by renewing its heartbeat", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* resetDatabase
      yield* dueMentors(4)
      const probe = yield* SqlStore.makeSqlStore
      const options = runOptions({ pageSize: 1, budgetMs: 3_600_000 })
      const holders: Array<string | null> = []

      // Each page takes 250 s, on the run's clock and on the database's: the heartbeat ages as the run goes. After
      // each page another run tries to open; without renewals the third would find the lease (600 s) expired.
      const slowPages = (store: StoreApi): StoreApi => ({
        ...store,
        evaluate: (userIds, at, scenarios) =>
          Effect.gen(function* () {
            yield* TestClock.adjust("250 seconds")
            yield* sql`update scheduler_runs set heartbeat_at = heartbeat_at - interval '250 seconds'
              where invocation_id = ${options.invocationId}`.pipe(Effect.orDie)
            const opened = yield* probe.openRun(crypto.randomUUID(), new Date(), { overlap: "skip", leaseSeconds: 600 })
            holders.push(opened.lockedBy)
            return yield* store.evaluate(userIds, at, scenarios)
          })
      })

      const { summary, events } = yield* runOnce(options, recordingProvider().layer, slowPages).pipe(
        Effect.provide(TestContext.TestContext)
      )

      expect(summary.outcome).toBe("completed")
      expect(summary.stats.pagesProcessed).toBe(4)
      expect(holders).toEqual([options.invocationId, options.invocationId, options.invocationId, options.invocationId])
      expect(events("scheduler_run_lock_lost")).toEqual([])
      expect(yield* runRow(options.invocationId)).toMatchObject({ outcome: "completed" })
    })
  )
})
