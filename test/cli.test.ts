import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer, it as plainIt } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { seed } from "../adapters/cli/Seed.ts"
import { eventsOf, runCli, withWorkingDirectory } from "./support/cli.ts"
import { describeServer, postgresLayer, TestDatabase } from "./support/databases.ts"
import { expectRunLog as expectSharedRunLog } from "./support/runLog.ts"

const now = "2026-12-04T07:00:00Z"

/** The shared checks of a run's log, for the one run a CLI command made. */
const expectRunLog = (entries: ReadonlyArray<Record<string, unknown>>) => {
  const started = entries.find((entry) => entry.event === "scheduler_run_started")
  expectSharedRunLog(entries, String(started?.invocation_id))
}

describe("bad usage", () => {
  const usageCases = [
    ["an unknown flag", ["run", "--bogus"]],
    ["a malformed --now", ["run", "--now", "yesterday"]],
    ["an impossible date", ["run", "--now", "2026-02-30"]],
    ["a zero page size", ["run", "--page-size", "0"]],
    ["an unknown scenario", ["run", "--scenarios", "inactivity,birthday"]],
    ["an unknown command", ["launch"]],
    ["no command", []],
    ["a flag of another command", ["migrate", "--dry-run"]]
  ] as const

  plainIt.each(usageCases)("exits 64 with usage for %s", async (_, args) => {
    await withWorkingDirectory(async (cwd) => {
      const result = await runCli(args, { cwd })

      expect(result.code).toBe(64)
      expect(result.stderr).toContain("Usage: scenario-scheduler")
      expect(result.stdout).toBe("")
    })
  })

  plainIt("exits 64 for settings in the environment that do not parse", async () => {
    await withWorkingDirectory(async (cwd) => {
      const result = await runCli(["run"], { cwd, env: { SCHEDULER_PAGE_SIZE: "lots" } })

      expect(result.code).toBe(64)
      expect(result.stderr).toContain("SCHEDULER_PAGE_SIZE")
    })
  })
})

describe("an unreachable database", () => {
  plainIt("fails the run within seconds, says so, and keeps the password out of the log", async () => {
    await withWorkingDirectory(async (cwd) => {
      const result = await runCli(["run"], { cwd, env: { DATABASE_URL: "postgres://mentor:s3cretpw@127.0.0.1:1/x" } })

      expect(result.code).toBe(1)
      expect(result.elapsedMs).toBeLessThan(10_000)
      expect(eventsOf(result, "scheduler_run_failed")).toEqual([
        expect.objectContaining({ level: "error", error_type: "database_unavailable" })
      ])
      expectRunLog(result.entries)
      expect(result.stdout + result.stderr).not.toContain("s3cretpw")
    })
  })
})

describe("the demo on the embedded database", () => {
  plainIt("migrates, seeds and notifies; a second run the same day sends nothing new", async () => {
    await withWorkingDirectory(async (cwd) => {
      const first = await runCli(["demo", "--now", now, "--mentors", "300"], { cwd })

      expect(first.code).toBe(0)
      const runLog = first.entries.filter(
        (entry) => entry.event !== "seed_completed" && entry.event !== "migrations_applied"
      )
      expectRunLog(runLog)
      const completed = eventsOf(first, "scheduler_run_completed")[0] as Record<string, number>
      expect(completed.dispatched).toBeGreaterThan(0)
      expect(completed.suppressed).toBeGreaterThan(0)
      expect(completed.evaluated).toBe(completed.total_active)

      const outbox = (await readFile(join(cwd, ".scenario-scheduler", "outbox.jsonl"), "utf8")).trim().split("\n")
      expect(outbox).toHaveLength(completed.dispatched)

      const second = await runCli(["run", "--now", now], { cwd })
      expect(second.code).toBe(0)
      expect(eventsOf(second, "scheduler_run_completed")[0]).toMatchObject({ dispatched: 0, errors: 0 })
      expect(eventsOf(second, "scheduler_run_completed")[0]?.suppressed_by).toMatchObject({
        cooldown: expect.any(Number)
      })
    })
  })

  plainIt("stops at a tiny budget with exit 2, and the next run resumes where it stopped", async () => {
    await withWorkingDirectory(async (cwd) => {
      await runCli(["seed", "--now", now, "--mentors", "120"], { cwd })

      const partial = await runCli(["run", "--now", now, "--page-size", "10", "--budget-ms", "1"], { cwd })
      expect(partial.code).toBe(2)
      const stopped = eventsOf(partial, "scheduler_run_partial")[0] as Record<string, unknown>
      expect(stopped.remaining).toBeGreaterThan(0)

      const resumed = await runCli(["run", "--now", now], { cwd })
      expect(resumed.code).toBe(0)
      expect(eventsOf(resumed, "scheduler_run_resumed")[0]).toMatchObject({ resume_cursor: stopped.resume_cursor })
      expect(eventsOf(resumed, "scheduler_run_completed")[0]).toMatchObject({ resumed: true, outcome: "completed" })
    })
  })
})

describeServer("the CLI on a Postgres server", () => {
  layer(postgresLayer, { timeout: Duration.minutes(2), excludeTestServices: true })((it) => {
    it.effect("runs on a seeded server database and leaves one row per notification sent", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { url } = yield* TestDatabase
        yield* seed({ mentors: 400, randomSeed: 7, now: new Date(now) })

        // One organisation's zone is broken: only its mentors fail, each with a classified error.
        const [broken] = yield* sql<{ id: string }>`select id from organisations order by name limit 1`
        yield* sql`update organisations set timezone = 'Mars/Olympus_Mons' where id = ${broken?.id ?? ""}`

        const result = yield* Effect.promise(() =>
          withWorkingDirectory((cwd) => runCli(["run", "--now", now], { cwd, env: { DATABASE_URL: url } }))
        )

        expect(result.code).toBe(0)
        expectRunLog(result.entries)
        const completed = eventsOf(result, "scheduler_run_completed")[0] as Record<string, number>
        const [rows] = yield* sql<{ dispatched: number; broken_mentors: number }>`
          select
            (select count(*)::int from scenario_notifications where status = 'dispatched') as dispatched,
            (select count(*)::int from peer_mentors where status = 'active' and organisation_id = ${broken?.id ?? ""})
              as broken_mentors`
        expect(completed.dispatched).toBe(rows?.dispatched)
        expect(completed.errors).toBe(rows?.broken_mentors)
        const errorTypes = new Set(eventsOf(result, "mentor_evaluation_error").map((entry) => entry.error_type))
        expect([...errorTypes]).toEqual(["invalid_timezone"])
      })
    )
  })
})
