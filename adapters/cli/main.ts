import { randomUUID } from "node:crypto"
import type { SqlError } from "@effect/sql"
import { Cause, Config, Effect, Either, Exit, Fiber, Layer, Option, Redacted } from "effect"
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
import {
  logLevel,
  pushProviderName,
  type RunSettings,
  runOptionsFor,
  runSettings
} from "../../src/services/SchedulerConfig.ts"
import * as SqlStore from "../../src/services/SqlStore.ts"
import { fromSqlError } from "../../src/services/SqlStore.ts"
import {
  type Command,
  checkDatabaseUrl,
  parseCommand,
  type RunFlags,
  type SeedFlags,
  UsageError,
  usage
} from "./Args.ts"
import { type DatabaseUrl, databaseLayer, embeddedDatabaseWaitMs, outboxPath, redactedUrl } from "./Database.ts"
import { isDatabaseEmpty, seed } from "./Seed.ts"

export const exitCodes = { completed: 0, partial: 2, failed: 1, skipped: 0, usage: 64 } as const

/** `--database-url` wins over `DATABASE_URL`; an empty value means neither, so the embedded database. */
const databaseUrlOf = (command: Command, fromEnvironment: Option.Option<Redacted.Redacted<string>>) => {
  const flag = "databaseUrl" in command ? redactedUrl(command.databaseUrl) : undefined
  const environment = Option.getOrUndefined(fromEnvironment)
  return flag ?? (environment !== undefined && Redacted.value(environment) !== "" ? environment : undefined)
}

interface Invocation {
  readonly invocationId: string
  readonly settings: RunSettings
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
}

const runCommand = (databaseUrl: DatabaseUrl, flags: RunFlags, { invocationId, settings }: Invocation) =>
  Effect.gen(function* () {
    const services = SqlStore.layer.pipe(
      Layer.provide(databaseLayer(databaseUrl)),
      Layer.merge(pushProviderLayer(outboxPath)),
      Layer.mapError((error): SchedulerError => error)
    )

    const summary: RunSummary = yield* runScheduler(runOptionsFor(settings, { invocationId, ...flags }), services)
    return exitCodes[summary.outcome]
  })

const seedCommand = (databaseUrl: DatabaseUrl, flags: SeedFlags, onlyIfEmpty: boolean) =>
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

const migrateCommand = (databaseUrl: DatabaseUrl) =>
  migrate.pipe(
    Effect.tap((applied) => Logger.logEvent("info", "migrations_applied", { applied })),
    Effect.as(exitCodes.completed),
    Effect.provide(databaseLayer(databaseUrl))
  )

const commandEffect = (command: Exclude<Command, { _tag: "help" }>, invocation: Invocation) => {
  const databaseUrl = databaseUrlOf(command, invocation.databaseUrl)
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
    const databaseUrl = yield* Config.option(Config.redacted("DATABASE_URL"))
    yield* Option.match(databaseUrl, {
      onNone: () => Effect.void,
      onSome: (url) =>
        Effect.try({
          try: () => checkDatabaseUrl(Redacted.value(url) === "" ? undefined : Redacted.value(url)),
          catch: () =>
            new UsageError({ message: "DATABASE_URL must be a postgres:// or postgresql:// URL with a host" })
        })
    })
    // Read now, so that an unknown provider or a malformed wait is a usage error before anything runs.
    yield* pushProviderName
    yield* embeddedDatabaseWaitMs
    const invocationId = randomUUID()
    const invocation = { invocationId, settings, databaseUrl }

    return yield* commandEffect(parsed.right as Exclude<Command, { _tag: "help" }>, invocation).pipe(
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
      // An interrupted run has said in its log that it stopped early; an interrupted migration or seed failed.
      const runs = parsed.right._tag === "run" || parsed.right._tag === "demo"
      return Cause.isInterruptedOnly(cause) && runs ? exitCodes.partial : exitCodes.failed
    }
  })
}

process.exitCode = await main(process.argv.slice(2))
