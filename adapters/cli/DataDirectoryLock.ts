/**
 * An exclusive lock on the embedded database's directory, held by one CLI process at a time.
 *
 * PGlite takes no lock of its own: two processes that open the same directory both write to it and corrupt the
 * database. The lock is a file beside the directory holding the holder's pid. It is created atomically with its
 * content (written to a file of this process's own, then hard-linked into place, which fails when the lock exists),
 * so no process ever reads a half-written lock. A lock whose pid is no longer running was left by a process that
 * was killed; it is removed and taken. A live holder is waited for, up to a bound, and then the command gives up
 * with a message saying who holds the directory.
 */
import { randomBytes } from "node:crypto"
import { link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import { Clock, Effect, Layer, type Scope } from "effect"
import { DatabaseError } from "../../src/domain/Errors.ts"
import { logEvent } from "../../src/services/Logger.ts"

export interface DataDirectoryLockOptions {
  /** The lock file. */
  readonly path: string
  /** How long to wait for a live holder before giving up; zero gives up at once. */
  readonly waitMs: number
  /** How often to look again while waiting. */
  readonly pollMs?: number | undefined
}

type Attempt = { readonly _tag: "Taken" } | { readonly _tag: "Held"; readonly pid: number | null }

const failure = (path: string, cause: unknown) =>
  new DatabaseError({
    reason: "unavailable",
    message: `cannot lock the embedded database (${path}): ${cause instanceof Error ? cause.message : String(cause)}`
  })

const isErrno = (error: unknown, code: string): boolean =>
  typeof error === "object" && error !== null && "code" in error && error.code === code

/** The pid in a lock file; null when the file is gone or holds something else. */
const readPid = async (path: string): Promise<number | null> => {
  const text = await readFile(path, "utf8").catch((error: unknown) =>
    isErrno(error, "ENOENT") ? "" : Promise.reject(error)
  )
  const pid = Number.parseInt(text.trim(), 10)
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null
}

const tryTake = (path: string): Effect.Effect<Attempt, DatabaseError> =>
  Effect.tryPromise({
    try: async (): Promise<Attempt> => {
      const own = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`
      await writeFile(own, `${process.pid}\n`)
      try {
        await link(own, path)
        return { _tag: "Taken" }
      } catch (error) {
        if (!isErrno(error, "EEXIST")) throw error
        return { _tag: "Held", pid: await readPid(path) }
      } finally {
        await rm(own, { force: true })
      }
    },
    catch: (cause) => failure(path, cause)
  })

/**
 * Whether the process holding the lock still runs. A lock with this process's own pid was left by an earlier
 * process that had the same pid (containers start their processes at the same low pids): this process does
 * not hold it, since it takes the lock once per database it opens and gives it back when the database closes.
 */
const isRunning = (pid: number): boolean => {
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return !isErrno(error, "ESRCH")
  }
}

/**
 * Removes a lock left by a dead process. Another waiter may have removed it and taken the lock in the meantime,
 * so the file is moved aside first and put back if it turns out to be someone else's fresh lock.
 */
const removeStale = (path: string, stalePid: number) =>
  Effect.tryPromise({
    try: async () => {
      const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`
      try {
        await rename(path, aside)
      } catch (error) {
        if (isErrno(error, "ENOENT")) return
        throw error
      }
      if ((await readPid(aside)) !== stalePid) await link(aside, path).catch(() => undefined)
      await rm(aside, { force: true })
    },
    catch: (cause) => failure(path, cause)
  })

const busy = (path: string, pid: number | null, waitedMs: number) =>
  Effect.gen(function* () {
    yield* logEvent("error", "embedded_database_busy", { lock_file: path, holder_pid: pid, waited_ms: waitedMs })
    return yield* Effect.fail(
      new DatabaseError({
        reason: "unavailable",
        message:
          `the embedded database is in use by another scenario-scheduler process (pid ${pid ?? "unknown"}); ` +
          `run again when it has finished, or remove ${path} if no such process is running`
      })
    )
  })

/** Takes the lock, waiting for a live holder up to `waitMs`; fails with `embedded_database_busy` after that. */
const take = (options: DataDirectoryLockOptions) =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeMillis
    const pollMs = options.pollMs ?? 100
    let announced = false

    yield* Effect.tryPromise({
      try: () => mkdir(dirname(options.path), { recursive: true }),
      catch: (cause) => failure(options.path, cause)
    })

    while (true) {
      const attempt = yield* tryTake(options.path)
      if (attempt._tag === "Taken") return

      if (attempt.pid !== null && !isRunning(attempt.pid)) {
        yield* removeStale(options.path, attempt.pid)
        yield* logEvent("info", "embedded_database_stale_lock_removed", {
          lock_file: options.path,
          holder_pid: attempt.pid
        })
        continue
      }

      const waited = (yield* Clock.currentTimeMillis) - started
      if (waited >= options.waitMs) return yield* busy(options.path, attempt.pid, waited)
      if (!announced) {
        announced = true
        yield* logEvent("info", "embedded_database_waiting", {
          lock_file: options.path,
          holder_pid: attempt.pid,
          wait_ms: options.waitMs
        })
      }
      yield* Effect.sleep(Math.min(pollMs, options.waitMs - waited))
    }
  })

/** Gives the lock back, unless it is no longer this process's (someone removed it by hand). */
const release = (path: string) =>
  Effect.promise(async () => {
    if ((await readPid(path).catch(() => null)) === process.pid) await rm(path, { force: true })
  })

/** Holds the lock for the scope. */
export const acquire = (options: DataDirectoryLockOptions): Effect.Effect<void, DatabaseError, Scope.Scope> =>
  Effect.acquireRelease(take(options), () => release(options.path))

/** Holds the lock while the layer is in use; build the database on top of it so the lock is released last. */
export const layer = (options: DataDirectoryLockOptions): Layer.Layer<never, DatabaseError> =>
  Layer.scopedDiscard(acquire(options))
