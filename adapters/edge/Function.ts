import { Config, ConfigProvider, Data, Effect, Fiber, Layer, LogLevel, ManagedRuntime, Option, Redacted } from "effect"
import { errorType, InvalidConfigError, UnexpectedError } from "../../src/domain/Errors.ts"
import { describeCause } from "../../src/domain/Redaction.ts"
import { type RunSummary, runScheduler } from "../../src/program/Scheduler.ts"
import * as Logger from "../../src/services/Logger.ts"
import { logLevel, type RunSettings, runOptionsFor, runSettings } from "../../src/services/SchedulerConfig.ts"
import { isAuthorized } from "./Auth.ts"
import { type RunRequestBody, readRunRequest } from "./RunRequest.ts"
import { consoleWriter } from "./Runtime.ts"
import { servicesLayer } from "./Services.ts"

/**
 * The Edge Function `scenario-scheduler`: what it answers to a request and how its runs live.
 *
 * A POST with the cron secret is answered at once with 202 and the run's invocation_id, because
 * pg_net and the Supabase cron UI give up on a request after a few seconds; the run goes on in the
 * background, kept alive by `EdgeRuntime.waitUntil` where Supabase provides it. When the runtime
 * is about to stop the isolate, every run still going is interrupted and so ends as a partial run,
 * with the reason in its log.
 *
 * Every log line carries `component` and `invocation_id`: a run's lines its own id, a refused
 * request's lines the id the request was given, and the lines of the function instance itself
 * (the local server starting and stopping) the instance's id.
 */

export const component = "scenario-scheduler"

export interface EdgeFunctionOptions {
  /** The environment the configuration is read from. */
  readonly env: Readonly<Record<string, string>>
  /** Keeps the isolate alive for work after the response, where the runtime offers it. */
  readonly waitUntil?: ((promise: Promise<unknown>) => void) | undefined
  /** Where finished log lines go; console.log unless told otherwise. */
  readonly write?: ((line: string) => void) | undefined
}

export interface EdgeFunction {
  readonly handle: (request: Request) => Promise<Response>
  /** Interrupts every run still going, each logging the reason and ending as partial; resolves once they have ended. */
  readonly shutdown: (reason: string) => Promise<void>
  /** Logs a line of the function instance itself. */
  readonly log: (level: Logger.Level, event: string, fields?: Readonly<Record<string, unknown>>) => Promise<void>
  /** Reads a setting from the function's environment. */
  readonly setting: <A>(config: Config.Config<A>) => Promise<A>
  readonly dispose: () => Promise<void>
}

/** A request that is not run: the status and the one word its body says about why. */
class Refused extends Data.TaggedError("Refused")<{
  readonly status: 400 | 401 | 405 | 413 | 500
  readonly error: string
  /** Told to the caller: only for a malformed body, which the caller wrote. */
  readonly explanation?: string | undefined
  /** Why the function cannot serve at all (a 500): told to the log only. */
  readonly failure?: InvalidConfigError | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}> {}

interface Admitted {
  readonly body: RunRequestBody
  readonly settings: RunSettings
}

const json = (status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

/** An unset and an empty secret are both "not configured": an empty secret must never let anyone in. */
const cronSecret = Config.option(Config.redacted("SCHEDULER_CRON_SECRET")).pipe(
  Config.map(Option.filter((secret) => Redacted.value(secret) !== ""))
)

const notConfigured = (message: string) =>
  new Refused({
    status: 500,
    error: "not_configured",
    failure: new InvalidConfigError({ reason: "environment", message })
  })

const admit = (request: Request): Effect.Effect<Admitted, Refused> =>
  Effect.gen(function* () {
    if (request.method !== "POST") {
      return yield* new Refused({ status: 405, error: "method_not_allowed", headers: { allow: "POST" } })
    }

    const secret = yield* Effect.orElseSucceed(cronSecret, () => Option.none())
    if (Option.isNone(secret)) {
      return yield* notConfigured("SCHEDULER_CRON_SECRET is not set")
    }
    if (!(yield* isAuthorized(request.headers.get("authorization"), secret.value))) {
      return yield* new Refused({ status: 401, error: "unauthorized", headers: { "www-authenticate": "Bearer" } })
    }

    const body = yield* readRunRequest(request).pipe(
      Effect.mapError(
        (bad) =>
          new Refused({
            status: bad.status,
            error: bad.status === 413 ? "body_too_large" : "invalid_body",
            explanation: bad.message
          })
      )
    )
    const settings = yield* Effect.mapError(runSettings, (error) => notConfigured(String(error)))
    return { body, settings }
  })

const logRefusal = (refused: Refused, method: string) =>
  refused.failure !== undefined
    ? Logger.logEvent("error", "edge_function_misconfigured", {
        error_type: errorType(refused.failure),
        error_message: refused.failure.message
      })
    : Logger.logEvent("warn", "request_rejected", {
        status: refused.status,
        reason: refused.error,
        method,
        ...(refused.explanation === undefined ? {} : { message: refused.explanation })
      })

const refusalResponse = (refused: Refused): Response =>
  json(
    refused.status,
    refused.explanation === undefined
      ? { error: refused.error }
      : { error: refused.error, message: refused.explanation },
    refused.headers
  )

const runtimeLayer = (options: EdgeFunctionOptions) => {
  const config = Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(options.env))))
  const logger = Layer.unwrapEffect(
    logLevel.pipe(
      Effect.orElseSucceed(() => LogLevel.Info),
      Effect.map((minimumLevel) => Logger.layer({ minimumLevel, write: options.write ?? consoleWriter }))
    )
  )
  return Layer.provideMerge(logger, config)
}

export const makeEdgeFunction = (options: EdgeFunctionOptions): EdgeFunction => {
  const runtime = ManagedRuntime.make(runtimeLayer(options))
  const instanceId = options.env.SB_EXECUTION_ID || crypto.randomUUID()
  const runs = new Map<string, Fiber.RuntimeFiber<RunSummary>>()

  const annotated = <A, E>(invocationId: string, effect: Effect.Effect<A, E>) =>
    Effect.annotateLogs(effect, { component, invocation_id: invocationId })

  const start = (invocationId: string, { body, settings }: Admitted) =>
    Effect.gen(function* () {
      const runOptions = runOptionsFor(settings, {
        invocationId,
        now: body.now,
        scenarios: body.scenarios,
        dryRun: body.dry_run
      })

      // A daemon, so that the run outlives the request that started it.
      const fiber = yield* Effect.forkDaemon(runScheduler(runOptions, servicesLayer))
      runs.set(invocationId, fiber)
      fiber.addObserver(() => runs.delete(invocationId))
      options.waitUntil?.(Effect.runPromise(Fiber.await(fiber)))
    })

  const respond = (request: Request) => {
    const invocationId = crypto.randomUUID()

    return admit(request).pipe(
      Effect.flatMap((admitted) => start(invocationId, admitted)),
      Effect.as(json(202, { invocation_id: invocationId })),
      Effect.catchTag("Refused", (refused) => Effect.as(logRefusal(refused, request.method), refusalResponse(refused))),
      Effect.catchAllCause((cause) => {
        const failure = new UnexpectedError({ message: describeCause(cause) })
        return Effect.as(
          Logger.logEvent("error", "edge_request_failed", {
            error_type: errorType(failure),
            error_message: failure.message
          }),
          json(500, { error: "internal_error" })
        )
      }),
      (effect) => annotated(invocationId, effect)
    )
  }

  const interruptRun =
    (reason: string) =>
    ([invocationId, fiber]: readonly [string, Fiber.RuntimeFiber<RunSummary>]) =>
      annotated(invocationId, Logger.logEvent("warn", "edge_function_shutdown", { reason })).pipe(
        Effect.zipRight(Fiber.interrupt(fiber))
      )

  return {
    handle: (request) => runtime.runPromise(respond(request)),
    shutdown: (reason) =>
      runs.size === 0
        ? Promise.resolve()
        : runtime.runPromise(
            Effect.forEach([...runs], interruptRun(reason), { concurrency: "unbounded", discard: true })
          ),
    log: (level, event, fields) => runtime.runPromise(annotated(instanceId, Logger.logEvent(level, event, fields))),
    setting: (config) => runtime.runPromise(config),
    dispose: () => runtime.dispose()
  }
}
