/**
 * `npm run bench`: the scheduler against a synthetic population, side by side with the naive
 * per-mentor loop (bench/naive.ts) on the same data in the same process.
 *
 *   npm run bench                              10,000 and 100,000 mentors on the server, 10,000 on PGlite
 *   npm run bench -- --mentors 20000           one size (on PGlite too when it is 10,000 or fewer)
 *   npm run bench -- --page-size 500,1000,2000 the scheduler once per page size, on the same data
 *   npm run bench -- --database pglite         one kind of database only
 *
 * The server is at BENCH_DATABASE_URL or TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * every size gets a database of its own, created with a random name and dropped afterwards. Output: a line per
 * finished size while it runs, then a Markdown table, notes, and one JSON line per size, database and page size.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { Cause, Duration, Effect, Exit, Fiber, Option } from "effect"
import { defaultRunOptions } from "../src/program/RunOptions.ts"
import { type DatabaseKind, databaseLayer, serverAnswers } from "./Databases.ts"
import { type PopulationCounts, populate } from "./Population.ts"
import { benchToday, type NaiveRun, naiveRun, type SchedulerRun, schedulerRun } from "./Runs.ts"

/** Sizes above this are not run on PGlite, nor with the naive loop: they would take minutes. */
const SMALL = 10_000

const LARGE = 100_000

/** Longest any one size may take, population and every run included. */
const JOB_TIMEOUT = Duration.minutes(5)

/** The naive loop is given up after this, and reported as such. */
const NAIVE_TIMEOUT = Duration.minutes(2)

interface Job {
  readonly mentors: number
  readonly database: DatabaseKind
  readonly naive: boolean
  readonly pageSizes: ReadonlyArray<number>
}

interface JobResult {
  readonly job: Job
  readonly population: PopulationCounts
  readonly populateMs: number
  readonly runs: ReadonlyArray<SchedulerRun>
  readonly naive: NaiveRun | "timed_out" | null
}

// ---------------------------------------------------------------------------------------------
// One size on one database
// ---------------------------------------------------------------------------------------------

const timedNaiveRun = (database: DatabaseKind, outbox: string) =>
  naiveRun(database, outbox).pipe(
    Effect.timeoutOption(NAIVE_TIMEOUT),
    Effect.map(Option.getOrElse(() => "timed_out" as const))
  )

const benchJob = (job: Job, outbox: string) =>
  Effect.gen(function* () {
    const populateStart = performance.now()
    const population = yield* populate({ activeMentors: job.mentors, today: benchToday })
    const populateMs = performance.now() - populateStart

    const runs = yield* Effect.forEach(job.pageSizes, (pageSize) => schedulerRun(job.database, pageSize, outbox))
    const naive = job.naive ? yield* timedNaiveRun(job.database, outbox) : null

    const result: JobResult = { job, population, populateMs, runs, naive }
    return result
  }).pipe(Effect.provide(databaseLayer(job.database)))

const withOutbox = <A, E, R>(use: (path: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "scheduler-bench-"))),
    (directory) => use(join(directory, "outbox.jsonl")),
    (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
  )

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

const round = (value: number, digits = 0) => Number(value.toFixed(digits))

const naiveNote = (result: JobResult): string | undefined => {
  if (result.naive === "timed_out") return `the naive loop was stopped after ${Duration.format(NAIVE_TIMEOUT)}`
  if (result.naive === null && result.job.mentors > SMALL) {
    return `no naive loop above ${SMALL.toLocaleString("en-US")} mentors: at its rate it would take minutes`
  }
  return undefined
}

const jsonLine = (result: JobResult, run: SchedulerRun) => {
  const { cost, summary } = run
  const naive = result.naive === "timed_out" ? null : result.naive
  return {
    mentors: result.job.mentors,
    database: result.job.database,
    page_size: run.pageSize,
    wall_ms: round(cost.wallMs),
    js_cpu_ms: round(cost.cpuMs),
    db_cpu_ms: cost.databaseCpuMs === null ? null : round(cost.databaseCpuMs),
    peak_rss_mb: round(cost.peakRssMb, 1),
    start_rss_mb: round(cost.startRssMb, 1),
    peak_heap_mb: round(cost.peakHeapMb, 1),
    round_trips: cost.statements,
    pages: summary.stats.pagesProcessed,
    statements_per_page: round(cost.statements / Math.max(1, summary.stats.pagesProcessed), 2),
    per_mentor_us: round((cost.wallMs * 1000) / result.job.mentors, 1),
    notifications: run.written.count,
    dispatched: summary.stats.dispatched,
    suppressed: summary.stats.suppressed,
    outcome: summary.outcome,
    ...(summary.failure === null ? {} : { failure: summary.failure.message }),
    log_lines: run.logLines,
    activities: result.population.mentor_activities,
    populate_ms: round(result.populateMs),
    naive_wall_ms: naive === null ? null : round(naive.cost.wallMs),
    naive_js_cpu_ms: naive === null ? null : round(naive.cost.cpuMs),
    naive_round_trips: naive === null ? null : naive.cost.statements,
    naive_notifications: naive === null ? null : naive.result.notifications,
    speedup: naive === null ? null : round(naive.cost.wallMs / cost.wallMs, 1),
    same_notifications: naive === null ? null : naive.written.digest === run.written.digest,
    ...(naiveNote(result) === undefined ? {} : { naive_note: naiveNote(result) })
  }
}

type Line = ReturnType<typeof jsonLine>

const dash = (value: number | null, suffix = "") => (value === null ? "-" : `${value}${suffix}`)

const columns: ReadonlyArray<readonly [string, (line: Line) => string]> = [
  ["mentors", (l) => l.mentors.toLocaleString("en-US")],
  ["database", (l) => l.database],
  ["page", (l) => String(l.page_size)],
  ["wall ms", (l) => String(l.wall_ms)],
  ["µs/mentor", (l) => String(l.per_mentor_us)],
  ["JS CPU ms", (l) => String(l.js_cpu_ms)],
  ["DB CPU ms", (l) => dash(l.db_cpu_ms)],
  ["peak RSS MB", (l) => String(l.peak_rss_mb)],
  ["RSS at start MB", (l) => String(l.start_rss_mb)],
  ["statements", (l) => String(l.round_trips)],
  ["per page", (l) => String(l.statements_per_page)],
  ["notifications", (l) => String(l.notifications)],
  ["outcome", (l) => l.outcome],
  ["naive wall ms", (l) => dash(l.naive_wall_ms)],
  ["naive statements", (l) => dash(l.naive_round_trips)],
  ["speed-up", (l) => dash(l.speedup, "×")],
  ["same result", (l) => (l.same_notifications === null ? "-" : l.same_notifications ? "yes" : "NO")]
]

/** A Markdown table, so that it can be pasted into docs/PERFORMANCE.md as it is. */
const table = (lines: ReadonlyArray<Line>): string => {
  const header = `| ${columns.map(([name]) => name).join(" | ")} |`
  const rule = `|${columns.map(() => "---:").join("|")}|`
  const rows = lines.map((line) => `| ${columns.map(([, cell]) => cell(line)).join(" | ")} |`)
  return [header, rule, ...rows].join("\n")
}

const linearity = (lines: ReadonlyArray<Line>): ReadonlyArray<string> =>
  lines
    .filter((line) => line.database === "postgres" && line.mentors === LARGE)
    .flatMap((large) => {
      const small = lines.find(
        (line) => line.database === "postgres" && line.mentors === SMALL && line.page_size === large.page_size
      )
      if (small === undefined) return []
      const ratio = round(large.per_mentor_us / small.per_mentor_us, 2)
      return [`per-mentor time at 100,000 / at 10,000 on the server (page ${large.page_size}): ${ratio}`]
    })

const notes = (results: ReadonlyArray<JobResult>, lines: ReadonlyArray<Line>): ReadonlyArray<string> => [
  ...results.flatMap((result) => {
    const note = naiveNote(result)
    return note === undefined
      ? []
      : [`${result.job.mentors.toLocaleString("en-US")} on ${result.job.database}: ${note}`]
  }),
  ...linearity(lines),
  ...lines.flatMap((line) => [
    ...(line.outcome === "completed" ? [] : [`${line.mentors} on ${line.database}: the run ended ${line.outcome}`]),
    ...(line.same_notifications === false
      ? [`${line.mentors} on ${line.database}: the naive loop sent other notifications than the scheduler`]
      : [])
  ])
]

const write = (text: string) => process.stdout.write(`${text}\n`)

const progress = (result: JobResult) => {
  const runs = result.runs.map((run) => `scheduler (page ${run.pageSize}) ${round(run.cost.wallMs)} ms`).join(", ")
  const naive =
    result.naive === null
      ? ""
      : result.naive === "timed_out"
        ? ", naive timed out"
        : `, naive ${round(result.naive.cost.wallMs)} ms`
  return (
    `${result.job.mentors} mentors on ${result.job.database}: populated in ${round(result.populateMs)} ms ` +
    `(${result.population.mentor_activities} activities), ${runs}${naive}`
  )
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const positiveIntegers = (name: string, text: string): ReadonlyArray<number> =>
  text.split(",").map((part) => {
    const value = Number(part)
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} takes positive integers`)
    return value
  })

const jobsFrom = (argv: ReadonlyArray<string>): ReadonlyArray<Job> => {
  const { values } = parseArgs({
    args: [...argv],
    options: { mentors: { type: "string" }, "page-size": { type: "string" }, database: { type: "string" } }
  })
  const sizes = values.mentors === undefined ? [SMALL, LARGE] : positiveIntegers("mentors", values.mentors)
  const pageSizes = positiveIntegers("page-size", values["page-size"] ?? String(defaultRunOptions.pageSize))
  const only = values.database
  if (only !== undefined && only !== "postgres" && only !== "pglite")
    throw new Error("--database is postgres or pglite")

  const jobs: ReadonlyArray<Job> = [
    ...sizes.map((mentors) => ({ mentors, database: "postgres" as const, naive: mentors <= SMALL, pageSizes })),
    ...sizes
      .filter((mentors) => mentors <= SMALL)
      .map((mentors) => ({ mentors, database: "pglite" as const, naive: true, pageSizes }))
  ]
  return jobs.filter((job) => only === undefined || job.database === only)
}

const program = (jobs: ReadonlyArray<Job>) =>
  Effect.gen(function* () {
    if (jobs.some((job) => job.database === "postgres") && !(yield* serverAnswers)) {
      return yield* Effect.dieMessage(
        "the Postgres server does not answer; set BENCH_DATABASE_URL or TEST_DATABASE_URL"
      )
    }

    const results: Array<JobResult> = []
    for (const job of jobs) {
      const result = yield* withOutbox((outbox) => benchJob(job, outbox)).pipe(
        Effect.timeoutFail({
          duration: JOB_TIMEOUT,
          onTimeout: () =>
            new Error(`${job.mentors} mentors on ${job.database} took longer than ${Duration.format(JOB_TIMEOUT)}`)
        })
      )
      write(progress(result))
      results.push(result)
    }

    const lines = results.flatMap((result) => result.runs.map((run) => jsonLine(result, run)))
    write("")
    write(table(lines))
    write("")
    for (const note of notes(results, lines)) write(`- ${note}`)
    write("")
    for (const line of lines) write(JSON.stringify(line))
  })

const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const reason = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : ""
  return `${String(error)}${reason}`
}

const main = async () => {
  const fiber = Effect.runFork(program(jobsFrom(process.argv.slice(2))))

  // Interrupting runs the finalizers, which drop the benchmark's databases.
  const interrupt = () => Effect.runFork(Fiber.interrupt(fiber))
  process.once("SIGINT", interrupt)
  process.once("SIGTERM", interrupt)

  const exit = await Effect.runPromise(Fiber.await(fiber))
  if (Exit.isFailure(exit)) {
    process.stderr.write(`bench failed: ${describeFailure(exit.cause)}\n`)
    process.exitCode = 1
  }
}

await main()
