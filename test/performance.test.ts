import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { populate } from "../bench/Population.ts"
import { benchToday, naiveRun, schedulerRun } from "../bench/Runs.ts"
import { readMigrationFiles } from "../src/services/Migrations.ts"
import { pgliteLayer } from "./support/databases.ts"

const PERFORMANCE_VERSION = "20261201000600"

/** The text of scheduler_evaluate's definition in a migration, from `create` to the end of its body. */
const evaluateDefinition = (sql: string): string | undefined => {
  const start = sql.search(/create (or replace )?function public\.scheduler_evaluate\(/)
  if (start < 0) return undefined
  return sql.slice(start, sql.indexOf("$$;", start) + 3)
}

/** The one change the performance migration is allowed to make. */
const withoutMaterialization = (definition: string): string =>
  definition
    .replace("create or replace function", "create function")
    .replace("checked as materialized (", "checked as (")

describe("the performance migration", () => {
  it.effect("redefines scheduler_evaluate as the latest earlier definition with only `checked` materialized", () =>
    Effect.gen(function* () {
      const files = yield* readMigrationFiles()
      const definitions = files.flatMap((file) => {
        const definition = evaluateDefinition(file.sql)
        return definition === undefined ? [] : [{ version: file.version, definition }]
      })

      const performance = definitions.find((entry) => entry.version === PERFORMANCE_VERSION)
      const earlier = definitions.filter((entry) => entry.version < PERFORMANCE_VERSION).at(-1)

      assert.isDefined(performance)
      assert.isDefined(earlier)
      assert.include(performance?.definition ?? "", "checked as materialized (")
      assert.strictEqual(
        withoutMaterialization(performance?.definition ?? ""),
        withoutMaterialization(earlier?.definition ?? "")
      )

      // A later redefinition would silently take the change back out.
      for (const later of definitions.filter((entry) => entry.version > PERFORMANCE_VERSION)) {
        assert.include(later.definition, "checked as materialized (", `migration ${later.version}`)
      }
    })
  )
})

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
