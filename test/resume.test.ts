import { SqlClient } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect, TestClock, TestContext } from "effect"
import type { StoreApi } from "../src/services/Store.ts"
import { describeEachDatabase } from "./support/databases.ts"
import { addMentor, dueMentors, recordingProvider, resetDatabase, runOnce, runOptions, runRow } from "./support/runs.ts"

/** Above every random (version 4) uuid, and below every one. */
const lastId = "fffffffe-0000-4000-8000-000000000000"
const firstId = "00000000-0000-4000-8000-000000000001"

const notifiedCounts = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ user_id: string; count: number }>`
    select m.user_id, count(n.id)::int as count
    from peer_mentors as m
    left join scenario_notifications as n on n.user_id = m.user_id
    group by m.user_id`
  return new Map(rows.map((row) => [row.user_id, row.count]))
})

describeEachDatabase("resuming partial runs", (it) => {
  it.effect("covers every active mentor once over three partial runs, while mentors come and go between pages", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* resetDatabase
      const organisation = yield* dueMentors(36)
      const ids = (yield* sql<{ user_id: string }>`select user_id from peer_mentors order by user_id`).map(
        (row) => row.user_id
      )
      const [lowest, highest] = [ids[0] as string, ids[ids.length - 1] as string]
      let pages = 0

      // Each page takes a second of the run's clock, so a 3.5 s budget holds three pages of four mentors. After the
      // first page: the mentor at the end leaves and one joins there (ahead of the cursor), the first mentor (already
      // judged) leaves, and one joins before every other (behind the cursor, so for the next round).
      const changing = (store: StoreApi): StoreApi => ({
        ...store,
        evaluate: (userIds, at, scenarios) =>
          Effect.gen(function* () {
            yield* TestClock.adjust("1 second")
            const evaluation = yield* store.evaluate(userIds, at, scenarios)
            pages += 1
            if (pages === 1) {
              yield* Effect.orDie(
                sql`update peer_mentors set status = 'inactive' where user_id in (${lowest}, ${highest})`
              )
              yield* addMentor(organisation, lastId).pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.orDie)
              yield* addMentor(organisation, firstId).pipe(
                Effect.provideService(SqlClient.SqlClient, sql),
                Effect.orDie
              )
            }
            return evaluation
          })
      })

      const runs = []
      for (let index = 0; index < 3; index++) {
        const options = runOptions({ pageSize: 4, budgetMs: 3_500 })
        runs.push({ options, ...(yield* runOnce(options, recordingProvider().layer, changing)) })
      }
      const counts = yield* notifiedCounts

      expect(runs.map((run) => run.summary.outcome)).toEqual(["partial", "partial", "partial"])
      expect(runs.map((run) => run.summary.stats.pagesProcessed)).toEqual([3, 3, 3])
      expect(runs.reduce((sum, run) => sum + run.summary.stats.evaluated, 0)).toBe(36)
      // Judged twice would show as a cooldown: nobody was.
      expect(runs.map((run) => run.summary.stats.suppressedBy.cooldown)).toEqual([0, 0, 0])
      for (const id of ids.slice(1, -1)) expect(counts.get(id)).toBe(1)
      expect([counts.get(lowest), counts.get(highest), counts.get(lastId), counts.get(firstId)]).toEqual([1, 0, 1, 0])

      // The second and third runs say where they resumed, in the log and in their rows.
      for (const [previous, run] of [
        [runs[0], runs[1]],
        [runs[1], runs[2]]
      ] as const) {
        expect(run.events("scheduler_run_resumed")).toEqual([
          expect.objectContaining({ resume_cursor: previous.summary.resumeCursor })
        ])
        expect(run.completed).toMatchObject({ resumed: true, outcome: "partial" })
        expect(yield* runRow(run.options.invocationId)).toMatchObject({
          outcome: "partial",
          resume_cursor: run.summary.resumeCursor,
          stats: { resumed_from: previous.summary.resumeCursor }
        })
      }
      expect(yield* runRow(runs[0].options.invocationId)).toMatchObject({ stats: { resumed_from: null } })

      // The next run wraps around from the end to the start and reaches the mentor who joined behind the cursor.
      const next = yield* runOnce(runOptions({ pageSize: 4 }), recordingProvider().layer, changing)
      expect(next.summary).toMatchObject({ outcome: "completed", resumed: true })
      expect(next.summary.stats).toMatchObject({ evaluated: 36, dispatched: 1 })
      expect((yield* notifiedCounts).get(firstId)).toBe(1)
    }).pipe(Effect.provide(TestContext.TestContext))
  )
})
