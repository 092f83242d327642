import { randomUUID } from "node:crypto"
import type { SqlError } from "@effect/sql"
import { Cause, Effect, Either, Exit, Fiber, Layer, Option } from "effect"
import {
  type DatabaseError,
  errorType,
  InvalidConfigError,
  type SchedulerError,
  UnexpectedError
} from "../../src/domain/Errors.ts"
import { type RunSummary, runScheduler } from "../../src/program/Scheduler.ts"
import * as Logger from "../../src/services/Logger.ts"
import { type MigrationFileError, migrate } from "../../src/services/Migrations.ts"
import { pushProviderLayer } from "../../src/services/PushConfig.ts"
import { logLevel, type RunSettings, runOptionsFor, runSettings } from "../../src/services/SchedulerConfig.ts"
import * as SqlStore from "../../src/services/SqlStore.ts"
import { fromSqlError } from "../../src/services/SqlStore.ts"
import { type Command, parseCommand, type RunFlags, type SeedFlags, UsageError, usage } from "./Args.ts"
import { databaseLayer, outboxPath, redactedUrl } from "./Database.ts"
import { isDatabaseEmpty, seed } from "./Seed.ts"

export const exitCodes = { completed: 0, partial: 2, failed: 1, skipped: 0, usage: 64 } as const

const databaseUrlOf = (command: Command) =>
  redactedUrl(("databaseUrl" in command ? command.databaseUrl : undefined) ?? process.env.DATABASE_URL)

interface Invocation {
  readonly invocationId: string
  readonly settings: RunSettings
}

const runCommand = (
  databaseUrl: ReturnType<typeof redactedUrl>,
  flags: RunFlags,
  { invocationId, settings }: Invocation
) =>
  Effect.gen(function* () {
    const services = SqlStore.layer.pipe(
      Layer.provide(databaseLayer(databaseUrl)),
      Layer.merge(pushProviderLayer(outboxPath)),
      Layer.mapError((error): SchedulerError => error)
    )

    const summary: RunSummary = yield* runScheduler(runOptionsFor(settings, { invocationId, ...flags }), services)
    return exitCodes[summary.outcome]
  })

const seedCommand = (databaseUrl: ReturnType<typeof redactedUrl>, flags: SeedFlags, onlyIfEmpty: boolean) =>
  Effect.gen(function* () {
    const empty = yield* isDatabaseEmpty
    if (!empty) {
      yield* Logger.logEvent(onlyIfEmpty ? "info" : "error", "seed_skipped", { reason: "database_not_empty" })
      return onlyIfEmpty ? exitCodes.completed : exitCodes.failed
    }

    const summary = yield* seed({ mentors: flags.mentors, randomSeed: flags.randomSeed, now: flags.now ?? new Date() })
    yield* Logger.logEvent("info", "seed_completed", {
      ...summary.counts,
      organisations: summary.organisations.map(({ timezone, chapters, mentors }) => ({ timezone, chapters, mentors }))
    })
    return exitCodes.completed
  }).pipe(Effect.provide(databaseLayer(databaseUrl)))

const migrateCommand = (databaseUrl: ReturnType<typeof redactedUrl>) =>
  migrate.pipe(
    Effect.tap((applied) => Logger.logEvent("info", "migrations_applied", { applied })),
    Effect.as(exitCodes.completed),
    Effect.provide(databaseLayer(databaseUrl))
  )

const commandEffect = (command: Exclude<Command, { _tag: "help" }>, invocation: Invocation) => {
  const databaseUrl = databaseUrlOf(command)
  switch (command._tag) {
    case "migrate":
      return migrateCommand(databaseUrl)
    case "seed":
      return seedCommand(databaseUrl, command.seed, false)
    case "run":
      return runCommand(databaseUrl, command.run, invocation)
    case "demo":
      return Effect.gen(function* () {
        yield* migrateCommand(databaseUrl)
        yield* seedCommand(databaseUrl, command.seed, true)
        return yield* runCommand(databaseUrl, command.run, invocation)
      })
  }
}

/** Commands other than `run` report their own failure in one structured line. */
const reportFailure = (cause: Cause.Cause<DatabaseError | SqlError.SqlError | MigrationFileError>) => {
  const failure = Option.getOrUndefined(Cause.failureOption(cause))
  const error: SchedulerError =
    failure === undefined
      ? new UnexpectedError({ message: Cause.isInterruptedOnly(cause) ? "interrupted" : "unexpected defect" })
      : failure._tag === "SqlError"
        ? fromSqlError(failure)
        : failure._tag === "MigrationFileError"
          ? new InvalidConfigError({ reason: "environment", message: failure.message })
          : failure

  return Logger.logEvent("error", "command_failed", { error_type: errorType(error), error_message: error.message })
}

const writeUsage = (message: string | undefined) => {
  process.stderr.write(`${message ? `scenario-scheduler: ${message}\n\n` : ""}${usage}`)
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const parsed = parseCommand(argv)
  if (Either.isLeft(parsed)) {
    writeUsage(parsed.left.message)
    return exitCodes.usage
  }
  if (parsed.right._tag === "help") {
    writeUsage(undefined)
    return exitCodes.completed
  }

  const program = Effect.gen(function* () {
    const level = yield* logLevel
    const settings = yield* runSettings
    const invocationId = randomUUID()

    return yield* commandEffect(parsed.right as Exclude<Command, { _tag: "help" }>, { invocationId, settings }).pipe(
      Effect.tapErrorCause(reportFailure),
      Effect.catchAllCause(() => Effect.succeed(exitCodes.failed)),
      Effect.annotateLogs({ component: "scenario-scheduler", invocation_id: invocationId }),
      Effect.provide(Logger.layer({ minimumLevel: level }))
    )
  }).pipe(
    // Settings from the environment that do not parse are a usage error, like a bad flag.
    Effect.catchTag("ConfigError", (error) => Effect.fail(new UsageError({ message: String(error) })))
  )

  const fiber = Effect.runFork(program)
  const interrupt = () => Effect.runFork(Fiber.interrupt(fiber))
  process.once("SIGINT", interrupt)
  process.once("SIGTERM", interrupt)

  const exit = await Effect.runPromise(Fiber.await(fiber))
  return Exit.match(exit, {
    onSuccess: (code) => code,
    onFailure: (cause) => {
      const usageError = Option.getOrUndefined(Cause.failureOption(cause))
      if (usageError instanceof UsageError) {
        writeUsage(usageError.message)
        return exitCodes.usage
      }
      return Cause.isInterruptedOnly(cause) ? exitCodes.partial : exitCodes.failed
    }
  })
}

process.exitCode = await main(process.argv.slice(2))
