import { spawnSync } from "node:child_process"
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as DataDirectoryLock from "../adapters/cli/DataDirectoryLock.ts"
import { makeLogCapture } from "./support/captureLogs.ts"
import { eventsOf, runCli } from "./support/cli.ts"
import { startCliScoped, temporaryDirectory, waitFor } from "./support/processes.ts"
import { now } from "./support/runs.ts"

/** The pid of a process that has already exited. */
const deadPid = (): number => spawnSync(process.execPath, ["-e", ""]).pid as number

/** A live process other than this one: the test runner's parent. */
const livePid = process.ppid

const exists = (path: string) =>
  Effect.promise(() =>
    stat(path).then(
      () => true,
      () => false
    )
  )

const lockHeldBy = (path: string, pid: number) => Effect.promise(() => writeFile(path, `${pid}\n`))

describe("the embedded database's directory lock", () => {
  it.live("is taken with this process's pid and given back when the scope closes", () =>
    Effect.gen(function* () {
      const path = join(yield* temporaryDirectory, "pgdata.lock")

      const held = yield* Effect.scoped(
        DataDirectoryLock.acquire({ path, waitMs: 0 }).pipe(
          Effect.zipRight(Effect.promise(() => readFile(path, "utf8")))
        )
      )

      expect(held.trim()).toBe(String(process.pid))
      expect(yield* exists(path)).toBe(false)
    }).pipe(Effect.scoped)
  )

  it.live("gives up with embedded_database_busy while a live process holds it", () =>
    Effect.gen(function* () {
      const path = join(yield* temporaryDirectory, "pgdata.lock")
      const logs = makeLogCapture()
      yield* lockHeldBy(path, livePid)

      const error = yield* Effect.scoped(DataDirectoryLock.acquire({ path, waitMs: 0 })).pipe(
        Effect.provide(logs.layer),
        Effect.flip
      )

      expect(error).toMatchObject({ _tag: "DatabaseError", reason: "unavailable" })
      expect(error.message).toContain(`in use by another scenario-scheduler process (pid ${livePid})`)
      expect(logs.entries()).toEqual([
        expect.objectContaining({ event: "embedded_database_busy", level: "error", holder_pid: livePid })
      ])
      expect((yield* Effect.promise(() => readFile(path, "utf8"))).trim()).toBe(String(livePid))
    }).pipe(Effect.scoped)
  )

  it.live("takes over a lock left by a process that died", () =>
    Effect.gen(function* () {
      const path = join(yield* temporaryDirectory, "pgdata.lock")
      const logs = makeLogCapture()
      const dead = deadPid()
      yield* lockHeldBy(path, dead)

      yield* Effect.scoped(DataDirectoryLock.acquire({ path, waitMs: 0 })).pipe(Effect.provide(logs.layer))

      expect(logs.entries()).toEqual([
        expect.objectContaining({ event: "embedded_database_stale_lock_removed", holder_pid: dead })
      ])
      expect(yield* exists(path)).toBe(false)
    }).pipe(Effect.scoped)
  )

  it.live("waits for the holder to finish, then takes it", () =>
    Effect.gen(function* () {
      const path = join(yield* temporaryDirectory, "pgdata.lock")
      const logs = makeLogCapture()
      yield* lockHeldBy(path, livePid)

      const waiting = yield* Effect.fork(
        DataDirectoryLock.acquire({ path, waitMs: 30_000, pollMs: 20 }).pipe(
          Effect.zipRight(Effect.promise(() => readFile(path, "utf8"))),
          Effect.scoped,
          Effect.provide(logs.layer)
        )
      )
      yield* Effect.promise(() =>
        waitFor("the waiting line", () => logs.entries().some((entry) => entry.event === "embedded_database_waiting"))
      )
      // The holder finishes: its lock file goes.
      yield* Effect.promise(() => rm(path))

      expect((yield* Fiber.join(waiting)).trim()).toBe(String(process.pid))
      expect(logs.entries()[0]).toMatchObject({ event: "embedded_database_waiting", holder_pid: livePid })
    }).pipe(Effect.scoped)
  )
})

describe("two CLI processes on one data directory", () => {
  it.live(
    "the second waits for the first or, told not to wait, exits with a clear message; the directory opens afterwards",
    () =>
      Effect.gen(function* () {
        const cwd = yield* temporaryDirectory
        const lockFile = join(cwd, ".scenario-scheduler", "pgdata.lock")
        const at = ["--now", now.toISOString()]

        // A process killed earlier left its lock behind: the demo (migrate, seed, run) takes it over. Its run, slowed
        // by the outbox (150 ms a message, one at a time, in pages of five mentors), holds the directory for seconds.
        yield* Effect.promise(() => mkdir(join(cwd, ".scenario-scheduler"), { recursive: true }))
        yield* lockHeldBy(lockFile, deadPid())
        const first = yield* startCliScoped(["demo", "--mentors", "120", "--page-size", "5", ...at], {
          cwd,
          env: { OUTBOX_DELAY_MS: "150", SCHEDULER_DISPATCH_CONCURRENCY: "1" }
        })
        yield* Effect.promise(() =>
          waitFor("the first run's lock", async () => {
            const seeded = first.entries().some((entry) => entry.event === "seed_completed")
            return seeded && (await readFile(lockFile, "utf8").catch(() => "")).trim() === String(first.pid)
          })
        )
        expect(first.entries().filter((entry) => entry.event === "embedded_database_stale_lock_removed")).toHaveLength(
          1
        )

        const patient = yield* startCliScoped(["run", ...at], { cwd, env: { EMBEDDED_DATABASE_WAIT_MS: "60000" } })
        const impatient = yield* Effect.promise(() =>
          runCli(["run", ...at], { cwd, env: { EMBEDDED_DATABASE_WAIT_MS: "0" } })
        )

        expect(impatient.code).toBe(1)
        expect(eventsOf(impatient, "embedded_database_busy")).toEqual([
          expect.objectContaining({ level: "error", holder_pid: first.pid })
        ])
        expect(eventsOf(impatient, "scheduler_run_failed")[0]?.error_message).toContain(
          "in use by another scenario-scheduler process"
        )
        expect(impatient.entries[impatient.entries.length - 1]).toMatchObject({
          event: "scheduler_run_completed",
          outcome: "failed"
        })

        // Stopped while the other waits: it finishes its page, gives the directory back, and the other goes on.
        yield* Effect.promise(() =>
          waitFor("the waiting line", () =>
            patient.entries().some((entry) => entry.event === "embedded_database_waiting")
          )
        )
        first.child.kill("SIGTERM")
        expect(yield* Effect.promise(() => first.exited)).toBe(2)
        expect(yield* Effect.promise(() => patient.exited)).toBe(0)
        const patientLog = patient.entries()
        expect(patientLog.filter((entry) => entry.event === "embedded_database_waiting")).toEqual([
          expect.objectContaining({ holder_pid: first.pid })
        ])
        expect(patientLog[patientLog.length - 1]).toMatchObject({
          event: "scheduler_run_completed",
          outcome: "completed"
        })

        expect(yield* exists(lockFile)).toBe(false)
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )
})
