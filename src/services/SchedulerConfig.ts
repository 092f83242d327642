import { Config, LogLevel } from "effect"
import { allScenarioTypes, type ScenarioType } from "../domain/Scenario.ts"
import { defaultRunOptions, type RunOptions } from "../program/RunOptions.ts"
import type { OverlapPolicy } from "./Store.ts"

/**
 * The settings every adapter reads from the environment. Flags and request bodies may narrow a
 * single run further; these are the defaults an operator sets once per deployment.
 */
export const runSettings = Config.all({
  budgetMs: Config.integer("SCHEDULER_BUDGET_MS").pipe(
    Config.validate({ message: "must be a positive number of milliseconds", validation: (n) => n > 0 }),
    Config.withDefault(defaultRunOptions.budgetMs)
  ),
  pageSize: Config.integer("SCHEDULER_PAGE_SIZE").pipe(
    Config.validate({ message: "must be between 1 and 10000", validation: (n) => n >= 1 && n <= 10_000 }),
    Config.withDefault(defaultRunOptions.pageSize)
  ),
  dispatchConcurrency: Config.integer("SCHEDULER_DISPATCH_CONCURRENCY").pipe(
    Config.validate({ message: "must be between 1 and 256", validation: (n) => n >= 1 && n <= 256 }),
    Config.withDefault(defaultRunOptions.dispatchConcurrency)
  ),
  maxDetailLines: Config.integer("SCHEDULER_MAX_DETAIL_LINES").pipe(
    Config.validate({ message: "must not be negative", validation: (n) => n >= 0 }),
    Config.withDefault(defaultRunOptions.maxDetailLines)
  ),
  claimLeaseMs: Config.integer("SCHEDULER_CLAIM_LEASE_MS").pipe(
    Config.validate({ message: "must not be negative", validation: (n) => n >= 0 }),
    Config.withDefault(defaultRunOptions.claimLeaseMs)
  ),
  maxSendAttempts: Config.integer("SCHEDULER_MAX_SEND_ATTEMPTS").pipe(
    Config.validate({ message: "must be between 1 and 20", validation: (n) => n >= 1 && n <= 20 }),
    Config.withDefault(defaultRunOptions.maxSendAttempts)
  ),
  overlap: Config.literal("skip", "allow")("SCHEDULER_OVERLAP").pipe(Config.withDefault(defaultRunOptions.overlap)),
  runLeaseMs: Config.integer("SCHEDULER_RUN_LEASE_MS").pipe(
    Config.validate({ message: "must not be negative", validation: (n) => n >= 0 }),
    Config.withDefault(defaultRunOptions.runLeaseMs)
  ),
  receiptDelayMs: Config.integer("EXPO_RECEIPT_DELAY_MS").pipe(
    Config.validate({ message: "must not be negative", validation: (n) => n >= 0 }),
    Config.withDefault(defaultRunOptions.receiptDelayMs)
  )
})

export type RunSettings = Config.Config.Success<typeof runSettings>

/** What one invocation asks for, on top of the deployment's settings: flags, or an Edge request body. */
export interface RunRequest {
  readonly invocationId: string
  readonly now?: Date | undefined
  readonly scenarios?: ReadonlyArray<ScenarioType> | undefined
  readonly budgetMs?: number | undefined
  readonly pageSize?: number | undefined
  readonly dryRun?: boolean | undefined
  readonly overlap?: OverlapPolicy | undefined
}

export const runOptionsFor = (settings: RunSettings, request: RunRequest): RunOptions => ({
  ...settings,
  invocationId: request.invocationId,
  now: request.now,
  scenarios: request.scenarios ?? allScenarioTypes,
  budgetMs: request.budgetMs ?? settings.budgetMs,
  pageSize: request.pageSize ?? settings.pageSize,
  dryRun: request.dryRun ?? false,
  overlap: request.overlap ?? settings.overlap
})

export const logLevel = Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))

export const pushProviderName = Config.literal(
  "outbox",
  "fcm",
  "expo"
)("PUSH_PROVIDER").pipe(Config.withDefault("outbox" as const))
