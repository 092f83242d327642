/**
 * What one measured run cost: wall time, the process's CPU, its peak resident memory and the
 * database statements it issued. Statements are counted from the `sql.execute` spans that
 * `@effect/sql` opens around every statement, so nothing in the library has to know it is measured.
 */
import { readFile } from "node:fs/promises"
import { SqlClient } from "@effect/sql"
import { Effect, Tracer } from "effect"

export interface Cost {
  readonly wallMs: number
  /** CPU of this process (all its threads: PGlite runs the database in here too). */
  readonly cpuMs: number
  readonly peakRssMb: number
  /** The resident set when the run started: what the process held before (modules, the data of earlier steps). */
  readonly startRssMb: number
  readonly peakHeapMb: number
  readonly statements: number
  /** CPU of the server's backends for this database, when the database is a local server. */
  readonly databaseCpuMs: number | null
}

/** Wraps the current tracer and counts the statements @effect/sql issues under it. */
const countingTracer = (base: Tracer.Tracer, counter: { statements: number }): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      if (name === "sql.execute") counter.statements++
      return base.span(name, parent, context, links, startTime, kind, options)
    },
    context: (f, fiber) => base.context(f, fiber)
  })

/** Samples memory while the run lasts; the event loop is free often enough between statements. */
const sampleMemory = () => {
  const start = process.memoryUsage()
  const peak = { rss: start.rss, heap: start.heapUsed }
  const sample = () => {
    const usage = process.memoryUsage()
    peak.rss = Math.max(peak.rss, usage.rss)
    peak.heap = Math.max(peak.heap, usage.heapUsed)
  }
  const timer = setInterval(sample, 5)

  return () => {
    clearInterval(timer)
    sample()
    return { startRss: start.rss, peakRss: peak.rss, peakHeap: peak.heap }
  }
}

const clockTicksPerSecond = 100

/** utime + stime of a process in ms, from /proc; null where /proc cannot tell (not Linux, not local). */
const processCpuMs = (pid: number): Promise<number | null> =>
  readFile(`/proc/${pid}/stat`, "utf8").then(
    (stat) => {
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond
    },
    () => null
  )

/**
 * CPU spent so far by the backends connected to this database. Only meaningful for a server on this
 * machine; PGlite has no backends (its work is in the process's own CPU) and answers null.
 */
export const databaseCpu = (kind: "postgres" | "pglite") =>
  Effect.gen(function* () {
    if (kind === "pglite") return null
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ pid: number }>`
      select pid from pg_stat_activity where datname = current_database()
    `
    const times = yield* Effect.promise(() => Promise.all(rows.map((row) => processCpuMs(row.pid))))
    if (times.some((time) => time === null)) return null
    return new Map(rows.map((row, index) => [row.pid, times[index] as number]))
  })

const databaseCpuDelta = (before: Map<number, number> | null, after: Map<number, number> | null): number | null => {
  if (before === null || after === null) return null
  let total = 0
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0)
  return total
}

/** Runs `effect` once and answers its value with what it cost. */
export const measure = <A, E, R>(
  kind: "postgres" | "pglite",
  effect: Effect.Effect<A, E, R>
): Effect.Effect<{ readonly value: A; readonly cost: Cost }, E, R | SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const base = yield* Effect.tracer
    const counter = { statements: 0 }
    const databaseBefore = yield* Effect.orDie(databaseCpu(kind))

    const stopSampling = sampleMemory()
    const cpuStart = process.cpuUsage()
    const wallStart = performance.now()

    const value = yield* effect.pipe(Effect.withTracer(countingTracer(base, counter)))

    const wallMs = performance.now() - wallStart
    const cpu = process.cpuUsage(cpuStart)
    const memory = stopSampling()
    const databaseAfter = yield* Effect.orDie(databaseCpu(kind))

    const cost: Cost = {
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      peakRssMb: memory.peakRss / 2 ** 20,
      startRssMb: memory.startRss / 2 ** 20,
      peakHeapMb: memory.peakHeap / 2 ** 20,
      statements: counter.statements,
      databaseCpuMs: databaseCpuDelta(databaseBefore, databaseAfter)
    }
    return { value, cost }
  })
