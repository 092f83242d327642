import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { populate } from "../bench/Population.ts"
import { benchToday, naiveRun, schedulerRun } from "../bench/Runs.ts"
import { pgliteLayer } from "./support/databases.ts"

const withOutbox = <A, E, R>(use: (path: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "scheduler-perf-test-"))),
    (directory) => use(join(directory, "outbox.jsonl")),
    (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
  )

layer(pgliteLayer, { timeout: Duration.minutes(2), excludeTestServices: true })("the benchmark [pglite]", (it) => {
  it.effect(
    "has the naive loop send exactly what the scheduler sends, with constant statements per page",
    () =>
      withOutbox((outbox) =>
        Effect.gen(function* () {
          yield* populate({ activeMentors: 400, today: benchToday })

          const small = yield* schedulerRun("pglite", 50, outbox)
          const large = yield* schedulerRun("pglite", 200, outbox)
          const naive = yield* naiveRun("pglite", outbox)

          assert.strictEqual(small.summary.outcome, "completed")
          assert.isAbove(small.written.count, 20)
          assert.strictEqual(naive.written.count, small.written.count)
          assert.strictEqual(naive.written.digest, small.written.digest)
          assert.strictEqual(large.written.digest, small.written.digest)
          assert.strictEqual(naive.result.dispatched, small.summary.stats.dispatched)

          // Eight pages against two: each of the six more costs the page, the evaluation, the claim and one wave of
          // sends (its mark and its record), whatever the number of its mentors. No page here has 100 notifications.
          const pages = small.summary.stats.pagesProcessed - large.summary.stats.pagesProcessed
          assert.strictEqual(pages, 6)
          assert.strictEqual(small.cost.statements - large.cost.statements, 5 * pages)
        })
      ),
    { timeout: 120_000 }
  )
})
