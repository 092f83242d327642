import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { eventsOf, runCli } from "./support/cli.ts"
import { describeServer, postgresLayer, TestDatabase } from "./support/databases.ts"
import { jsonLines, startCli, temporaryDirectory, waitFor } from "./support/processes.ts"
import { dueMentors, now, runRow } from "./support/runs.ts"

const notificationStates = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ pending: number; dispatched: number; total: number }>`
    select count(*) filter (where status = 'pending')::int as pending,
      count(*) filter (where status = 'dispatched')::int as dispatched,
      count(*)::int as total
    from scenario_notifications`
  return row
})

describeServer("a run killed in the middle of sending", () => {
  layer(postgresLayer, { timeout: Duration.minutes(2), excludeTestServices: true })((it) => {
    it.scoped("leaves its claims to the next run, which delivers each exactly once and loses none", () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase
        const cwd = yield* temporaryDirectory
        const outbox = join(cwd, ".scenario-scheduler", "outbox.jsonl")
        yield* dueMentors(600)
        const run = ["run", "--now", now.toISOString(), "--page-size", "200"]

        // The outbox takes 50 ms a message, four at a time: the first page of 200 takes seconds to send, and the
        // run is killed once a few messages are out, before it could record any of them.
        const doomed = startCli(run, {
          cwd,
          env: { DATABASE_URL: url, OUTBOX_DELAY_MS: "50", SCHEDULER_DISPATCH_CONCURRENCY: "4" }
        })
        yield* Effect.promise(() => waitFor("the first deliveries", async () => (await jsonLines(outbox)).length >= 8))
        doomed.child.kill("SIGKILL")
        expect(yield* Effect.promise(() => doomed.exited)).toBeNull()
        const killedRun = doomed.entries()[0]?.invocation_id as string
        const deliveredBeforeKill = (yield* Effect.promise(() => jsonLines(outbox))).length

        expect(yield* notificationStates).toEqual({ pending: 200, dispatched: 0, total: 200 })
        expect(yield* runRow(killedRun)).toMatchObject({ outcome: "running", finished_at: null })

        // Without waiting out the leases: the dead run's claims and its hold on the lock are taken over at once.
        const next = yield* Effect.promise(() =>
          runCli(run, {
            cwd,
            env: { DATABASE_URL: url, SCHEDULER_CLAIM_LEASE_MS: "0", SCHEDULER_RUN_LEASE_MS: "0" }
          })
        )
        const delivered = yield* Effect.promise(() => jsonLines(outbox))

        expect(next.code).toBe(0)
        expect(eventsOf(next, "abandoned_runs_closed")).toEqual([
          expect.objectContaining({ count: 1, invocation_ids: [killedRun] })
        ])
        expect(eventsOf(next, "abandoned_notifications_recovered")).toEqual([
          expect.objectContaining({
            reclaimed: 200,
            confirmed_delivered: deliveredBeforeKill,
            sent: 200 - deliveredBeforeKill,
            given_up_outcome_unknown: 0
          })
        ])
        expect(eventsOf(next, "scheduler_run_completed")[0]).toMatchObject({
          outcome: "completed",
          recovered: 200,
          dispatched: 600
        })
        expect(yield* notificationStates).toEqual({ pending: 0, dispatched: 600, total: 600 })
        expect(delivered).toHaveLength(600)
        expect(new Set(delivered.map((line) => line.notification_id)).size).toBe(600)
        expect(new Set(delivered.map((line) => `${line.user_id}:${line.scenario_type}`)).size).toBe(600)
        expect(yield* runRow(killedRun)).toMatchObject({ outcome: "failed", stats: { lease_expired: true } })
      })
    )
  })
})
