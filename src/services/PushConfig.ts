import { Config, Effect, Layer, Option, ParseResult, Redacted, Schema } from "effect"
import type { InvalidConfigError, PushError } from "../domain/Errors.ts"
import {
  environmentError,
  fromConfigError,
  httpUrl,
  integerBetween,
  isHttpUrl,
  optionalSecret
} from "./EnvironmentConfig.ts"
import * as ExpoProvider from "./ExpoProvider.ts"
import * as FcmProvider from "./FcmProvider.ts"
import * as OutboxProvider from "./OutboxProvider.ts"
import type { RequestLimits } from "./PushHttp.ts"
import type { PushProvider } from "./PushProvider.ts"
import { pushProviderName } from "./SchedulerConfig.ts"

/**
 * Push configuration from the environment: which provider, its credentials and base URLs, and the
 * limits on its requests. Credentials are read as `Redacted` and stay so; nothing here puts a
 * credential's text into an error message.
 */

const DEFAULT_FCM_BASE_URL = "https://fcm.googleapis.com"
const DEFAULT_FCM_OAUTH_URL = "https://oauth2.googleapis.com/token"
const DEFAULT_EXPO_BASE_URL = "https://exp.host"

// Expo allows 600 notifications a second per project, which is six full requests; FCM's default
// quota is far higher, and this keeps one run from using all of it.
const defaultRequestsPerSecond = { fcm: 100, expo: 6 } as const

/** The fields of a Google service account key file that FCM needs; the rest are ignored. */
export const ServiceAccount = Schema.Struct({
  project_id: Schema.NonEmptyTrimmedString,
  client_email: Schema.NonEmptyTrimmedString,
  private_key: Schema.Redacted(Schema.String.pipe(Schema.includes("PRIVATE KEY"))),
  token_uri: Schema.optional(Schema.String)
})
export type ServiceAccount = typeof ServiceAccount.Type

const baseUrl = (name: string, fallback: string) => httpUrl(name).pipe(Config.withDefault(fallback))

const positiveInteger = (name: string, max: number) => integerBetween(name, 1, max)

export const pushLimits = Config.all({
  requestTimeoutMs: positiveInteger("PUSH_REQUEST_TIMEOUT_MS", 120_000).pipe(Config.withDefault(10_000)),
  maxConcurrency: positiveInteger("PUSH_MAX_CONCURRENCY", 256).pipe(Config.withDefault(6)),
  maxRequestsPerSecond: Config.option(positiveInteger("PUSH_MAX_REQUESTS_PER_SECOND", 10_000))
})

export const fcmSettings = Config.all({
  serviceAccount: optionalSecret("FCM_SERVICE_ACCOUNT"),
  serviceAccountFile: Config.option(Config.string("FCM_SERVICE_ACCOUNT_FILE")),
  baseUrl: baseUrl("FCM_BASE_URL", DEFAULT_FCM_BASE_URL),
  oauthUrl: Config.option(Config.string("FCM_OAUTH_URL"))
})

export const outboxSettings = Config.all({
  delayMs: Config.integer("OUTBOX_DELAY_MS").pipe(
    Config.validate({ message: "must be between 0 and 60000", validation: (n) => n >= 0 && n <= 60_000 }),
    Config.withDefault(0)
  )
})

export const expoSettings = Config.all({
  baseUrl: baseUrl("EXPO_BASE_URL", DEFAULT_EXPO_BASE_URL),
  accessToken: optionalSecret("EXPO_ACCESS_TOKEN")
})

// ---------------------------------------------------------------------------------------------
// The service account
// ---------------------------------------------------------------------------------------------

/** Names the fields that are wrong and how, never their values: one of them is the private key. */
const describeIssues = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => `${issue.path.join(".") || "(root)"} ${issue._tag === "Missing" ? "is missing" : "is not usable"}`)
    .join("; ")

const parseJson = (text: Redacted.Redacted<string>): Effect.Effect<unknown, InvalidConfigError> =>
  Effect.try({
    try: () => JSON.parse(Redacted.value(text)) as unknown,
    // The parser's message quotes the text around the error, which may be the key.
    catch: () => environmentError("the FCM service account is not valid JSON")
  })

/** Decodes service account JSON text into the fields FCM needs. */
export const decodeServiceAccount = (
  text: Redacted.Redacted<string>
): Effect.Effect<ServiceAccount, InvalidConfigError> =>
  parseJson(text).pipe(
    Effect.flatMap(Schema.decodeUnknown(ServiceAccount, { errors: "all" })),
    Effect.catchTag("ParseError", (error) =>
      Effect.fail(environmentError(`the FCM service account: ${describeIssues(error)}`))
    )
  )

/**
 * Reads a service account key file. It loads `node:fs` only when called, so the module stays
 * importable where there is no file system (an Edge Function sets FCM_SERVICE_ACCOUNT instead).
 */
export const readServiceAccountFile = (path: string): Effect.Effect<Redacted.Redacted<string>, InvalidConfigError> =>
  Effect.tryPromise({
    try: async () => {
      const { readFile } = await import("node:fs/promises")
      return Redacted.make(await readFile(path, "utf8"))
    },
    catch: () => environmentError(`FCM_SERVICE_ACCOUNT_FILE could not be read: ${path}`)
  })

const serviceAccountText = (settings: Config.Config.Success<typeof fcmSettings>) => {
  if (Option.isSome(settings.serviceAccount)) {
    return Effect.succeed(settings.serviceAccount.value)
  }
  if (Option.isSome(settings.serviceAccountFile)) {
    return readServiceAccountFile(settings.serviceAccountFile.value)
  }
  return Effect.fail(environmentError("PUSH_PROVIDER=fcm needs FCM_SERVICE_ACCOUNT or FCM_SERVICE_ACCOUNT_FILE"))
}

// ---------------------------------------------------------------------------------------------
// Provider options and the layer
// ---------------------------------------------------------------------------------------------

const limitsFor = (provider: "fcm" | "expo") =>
  Effect.map(pushLimits, (limits): RequestLimits & { readonly requestTimeoutMs: number } => ({
    requestTimeoutMs: limits.requestTimeoutMs,
    maxConcurrency: limits.maxConcurrency,
    maxRequestsPerSecond: Option.getOrElse(limits.maxRequestsPerSecond, () => defaultRequestsPerSecond[provider])
  })).pipe(Effect.mapError(fromConfigError))

/** FCM_OAUTH_URL wins; then the service account's own token_uri; then Google's endpoint. */
export const fcmOptions: Effect.Effect<FcmProvider.FcmOptions, InvalidConfigError> = Effect.gen(function* () {
  const settings = yield* Effect.mapError(fcmSettings, fromConfigError)
  const serviceAccount = yield* Effect.flatMap(serviceAccountText(settings), decodeServiceAccount)
  const { requestTimeoutMs, ...limits } = yield* limitsFor("fcm")
  const oauthUrl = Option.getOrElse(settings.oauthUrl, () => serviceAccount.token_uri ?? DEFAULT_FCM_OAUTH_URL)

  if (!isHttpUrl(oauthUrl)) {
    return yield* Effect.fail(environmentError("FCM_OAUTH_URL (or the service account's token_uri) must be a URL"))
  }
  return { serviceAccount, baseUrl: settings.baseUrl, oauthUrl, requestTimeoutMs, limits }
})

export const expoOptions: Effect.Effect<ExpoProvider.ExpoOptions, InvalidConfigError> = Effect.gen(function* () {
  const settings = yield* Effect.mapError(expoSettings, fromConfigError)
  const { requestTimeoutMs, ...limits } = yield* limitsFor("expo")

  return { baseUrl: settings.baseUrl, accessToken: settings.accessToken, requestTimeoutMs, limits }
})

const providerLayer = (
  name: "outbox" | "fcm" | "expo",
  outboxPath: string
): Effect.Effect<Layer.Layer<PushProvider, InvalidConfigError | PushError>, InvalidConfigError> => {
  switch (name) {
    case "outbox":
      return Effect.map(Effect.mapError(outboxSettings, fromConfigError), (settings) =>
        OutboxProvider.layer(outboxPath, settings)
      )
    case "fcm":
      return Effect.map(fcmOptions, FcmProvider.layer)
    case "expo":
      return Effect.map(expoOptions, ExpoProvider.layer)
  }
}

/** The push provider PUSH_PROVIDER names (outbox unless set), configured from the environment. */
export const pushProviderLayer = (outboxPath: string): Layer.Layer<PushProvider, InvalidConfigError | PushError> =>
  Layer.unwrapEffect(
    Effect.mapError(pushProviderName, fromConfigError).pipe(Effect.flatMap((name) => providerLayer(name, outboxPath)))
  )
