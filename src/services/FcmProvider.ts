import { Clock, Effect, Either, Encoding, Layer, Option, Redacted, Schema, SynchronizedRef } from "effect"
import { InvalidConfigError, PushError, type PushErrorReason } from "../domain/Errors.ts"
import type { PushTokenRow } from "../domain/Evaluation.ts"
import type { PushContent } from "../domain/Message.ts"
import { logEvent } from "./Logger.ts"
import type { ServiceAccount } from "./PushConfig.ts"
import {
  codeOrNothing,
  type HttpAnswer,
  isSuccess,
  makeRequestLimiter,
  post,
  type RequestLimits,
  reasonForStatus
} from "./PushHttp.ts"
import { PushProvider, type PushProviderApi, type TokenDelivery } from "./PushProvider.ts"

/**
 * Firebase Cloud Messaging over its HTTP v1 API: one request per device token, authorised with
 * an OAuth 2.0 access token that the service account obtains by signing a JWT (RS256, Web Crypto).
 * The access token is cached until shortly before it expires; one refresh runs at a time.
 */

const PROVIDER = "fcm"
const SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// Google accepts assertions valid for at most an hour.
const ASSERTION_LIFETIME_S = 3600

// Refreshing a little early keeps a token from expiring between the check and the request.
const REFRESH_MARGIN_MS = 60_000

export interface FcmOptions {
  readonly serviceAccount: ServiceAccount
  /** Where messages go, without a trailing slash: `https://fcm.googleapis.com` in production. */
  readonly baseUrl: string
  /** The OAuth 2.0 token endpoint; it is also the audience of the signed assertion. */
  readonly oauthUrl: string
  readonly requestTimeoutMs: number
  readonly limits: RequestLimits
}

// ---------------------------------------------------------------------------------------------
// The access token
// ---------------------------------------------------------------------------------------------

const pemBody = (pem: string): string => pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "")

const importPrivateKey = (pem: Redacted.Redacted<string>): Effect.Effect<CryptoKey, InvalidConfigError> => {
  const unusable = () =>
    new InvalidConfigError({
      reason: "environment",
      message: "the FCM service account's private_key is not a PKCS#8 RSA private key"
    })

  return Either.match(Encoding.decodeBase64(pemBody(Redacted.value(pem))), {
    onLeft: () => Effect.fail(unusable()),
    onRight: (der) =>
      Effect.tryPromise({
        try: () =>
          crypto.subtle.importKey("pkcs8", new Uint8Array(der), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, [
            "sign"
          ]),
        catch: unusable
      })
  })
}

const authenticationError = (message: string, status?: number) =>
  new PushError({ provider: PROVIDER, reason: "authentication", status, message })

/** The signed JWT the token endpoint exchanges for an access token. */
const signAssertion = (key: CryptoKey, options: FcmOptions, nowMs: number) =>
  Effect.gen(function* () {
    const issuedAt = Math.floor(nowMs / 1000)
    const header = Encoding.encodeBase64Url(JSON.stringify({ alg: "RS256", typ: "JWT" }))
    const claims = Encoding.encodeBase64Url(
      JSON.stringify({
        iss: options.serviceAccount.client_email,
        scope: SCOPE,
        aud: options.oauthUrl,
        iat: issuedAt,
        exp: issuedAt + ASSERTION_LIFETIME_S
      })
    )
    const signingInput = `${header}.${claims}`

    const signature = yield* Effect.tryPromise({
      try: () => crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(signingInput)),
      catch: () => authenticationError("could not sign the OAuth assertion")
    })

    return Redacted.make(`${signingInput}.${Encoding.encodeBase64Url(new Uint8Array(signature))}`)
  })

const TokenResponse = Schema.Struct({
  access_token: Schema.Redacted(Schema.NonEmptyString),
  expires_in: Schema.Number.pipe(Schema.positive())
})

const OAuthErrorBody = Schema.Struct({ error: Schema.String })

/** A refused grant means our credentials are wrong; an overloaded endpoint is worth another try. */
const oauthFailure = (answer: HttpAnswer): PushError => {
  const code = Option.getOrUndefined(
    Option.flatMapNullable(Schema.decodeUnknownOption(OAuthErrorBody)(answer.body), (body) => codeOrNothing(body.error))
  )
  const reason = answer.status === 429 || answer.status >= 500 ? reasonForStatus(answer.status) : "authentication"

  return new PushError({
    provider: PROVIDER,
    reason,
    status: answer.status,
    retryAfterMs: answer.retryAfterMs,
    message: `the OAuth token endpoint answered ${answer.status}${code ? ` ${code}` : ""}`
  })
}

interface AccessToken {
  readonly value: Redacted.Redacted<string>
  readonly refreshAtMs: number
}

const requestAccessToken = (key: CryptoKey, options: FcmOptions, nowMs: number) =>
  Effect.gen(function* () {
    const assertion = yield* signAssertion(key, options, nowMs)

    const answer = yield* post({
      provider: PROVIDER,
      target: "the OAuth token endpoint",
      url: options.oauthUrl,
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion: Redacted.value(assertion) }).toString(),
      timeoutMs: options.requestTimeoutMs
    })
    if (!isSuccess(answer.status)) {
      return yield* Effect.fail(oauthFailure(answer))
    }

    const granted = yield* Schema.decodeUnknown(TokenResponse)(answer.body).pipe(
      Effect.mapError(() => authenticationError("the OAuth token endpoint answered without an access token"))
    )
    const lifetimeMs = granted.expires_in * 1000

    yield* logEvent("debug", "push_access_token_refreshed", { provider: PROVIDER, expires_in_s: granted.expires_in })
    return {
      value: granted.access_token,
      refreshAtMs: nowMs + lifetimeMs - Math.min(REFRESH_MARGIN_MS, lifetimeMs / 2)
    }
  })

/** The cached access token: fetched when missing or about to expire, one refresh at a time. */
const makeAccessTokens = (key: CryptoKey, options: FcmOptions) =>
  Effect.gen(function* () {
    const cache = yield* SynchronizedRef.make(Option.none<AccessToken>())

    const current = SynchronizedRef.modifyEffect(cache, (cached) =>
      Effect.gen(function* () {
        const nowMs = yield* Clock.currentTimeMillis
        if (Option.isSome(cached) && nowMs < cached.value.refreshAtMs) {
          return [cached.value.value, cached] as const
        }

        const fresh = yield* requestAccessToken(key, options, nowMs)
        return [fresh.value, Option.some(fresh)] as const
      })
    )

    // Only the token that was refused is forgotten; a newer one fetched meanwhile stays.
    const forget = (refused: Redacted.Redacted<string>) =>
      SynchronizedRef.update(cache, (cached) =>
        Option.isSome(cached) && cached.value.value === refused ? Option.none() : cached
      )

    return { current, forget }
  })

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

const FcmErrorBody = Schema.Struct({
  error: Schema.Struct({
    status: Schema.optional(Schema.String),
    details: Schema.optional(Schema.Array(Schema.Struct({ errorCode: Schema.optional(Schema.String) })))
  })
})

interface FcmErrorInfo {
  readonly status: string | undefined
  readonly codes: ReadonlyArray<string>
}

const errorInfoOf = (body: unknown): FcmErrorInfo =>
  Option.match(Schema.decodeUnknownOption(FcmErrorBody)(body), {
    onNone: () => ({ status: undefined, codes: [] }),
    onSome: ({ error }) => ({
      status: codeOrNothing(error.status),
      codes: (error.details ?? []).flatMap((detail) => codeOrNothing(detail.errorCode) ?? [])
    })
  })

/**
 * A bare 404 says the token is not known without saying it is gone for good, so the token is
 * kept. SENDER_ID_MISMATCH (a 403) is about one token registered to another project, not about
 * our credentials, so it must not stop the run the way an authentication failure does.
 */
const reasonOf = (status: number, info: FcmErrorInfo): PushErrorReason => {
  if (status === 404 || info.codes.includes("SENDER_ID_MISMATCH")) {
    return "invalid_token"
  }
  return reasonForStatus(status)
}

const describeError = (status: number, info: FcmErrorInfo): string => {
  const codes = info.codes.length > 0 ? ` (${info.codes.join(", ")})` : ""
  return `FCM answered ${status}${info.status ? ` ${info.status}` : ""}${codes}`
}

const deliveryOf = (tokenId: string, answer: HttpAnswer): TokenDelivery => {
  if (isSuccess(answer.status)) {
    return { tokenId, outcome: "delivered" }
  }

  const info = errorInfoOf(answer.body)
  if (info.codes.includes("UNREGISTERED")) {
    return { tokenId, outcome: "unregistered" }
  }

  const error = new PushError({
    provider: PROVIDER,
    reason: reasonOf(answer.status, info),
    status: answer.status,
    retryAfterMs: answer.retryAfterMs,
    message: describeError(answer.status, info)
  })
  return { tokenId, outcome: "failed", error }
}

const messageBody = (token: PushTokenRow, content: PushContent): string =>
  JSON.stringify({
    message: {
      token: Redacted.value(token.token),
      notification: { title: content.title, body: content.body },
      data: content.data
    }
  })

const wrongPlatform = (token: PushTokenRow): TokenDelivery => ({
  tokenId: token.id,
  outcome: "failed",
  error: new PushError({
    provider: PROVIDER,
    reason: "invalid_token",
    message: `a ${token.platform} token cannot be sent through FCM`
  })
})

const refusedCredentials = (deliveries: ReadonlyArray<TokenDelivery>): PushError | undefined => {
  for (const delivery of deliveries) {
    if (delivery.outcome === "failed" && delivery.error.reason === "authentication") {
      return delivery.error
    }
  }
  return undefined
}

/** Builds the provider: the private key is imported once, so an unusable key fails here and not per send. */
export const make = (options: FcmOptions): Effect.Effect<PushProviderApi, InvalidConfigError> =>
  Effect.gen(function* () {
    const key = yield* importPrivateKey(options.serviceAccount.private_key)
    const accessTokens = yield* makeAccessTokens(key, options)
    const limiter = yield* makeRequestLimiter(options.limits)
    const url = `${options.baseUrl}/v1/projects/${encodeURIComponent(options.serviceAccount.project_id)}/messages:send`

    const sendTo = (token: PushTokenRow, content: PushContent, accessToken: Redacted.Redacted<string>) =>
      limiter
        .limit(
          post({
            provider: PROVIDER,
            target: "FCM",
            url,
            headers: {
              authorization: `Bearer ${Redacted.value(accessToken)}`,
              "content-type": "application/json; charset=utf-8"
            },
            body: messageBody(token, content),
            timeoutMs: options.requestTimeoutMs
          })
        )
        .pipe(
          Effect.map((answer) => deliveryOf(token.id, answer)),
          Effect.catchAll((error) => Effect.succeed<TokenDelivery>({ tokenId: token.id, outcome: "failed", error }))
        )

    return PushProvider.of({
      name: PROVIDER,
      platforms: ["fcm"],
      send: (request) =>
        Effect.gen(function* () {
          if (!request.tokens.some((token) => token.platform === "fcm")) {
            return request.tokens.map(wrongPlatform)
          }
          const accessToken = yield* accessTokens.current

          const deliveries = yield* Effect.forEach(
            request.tokens,
            (token) =>
              token.platform === "fcm"
                ? sendTo(token, request.content, accessToken)
                : Effect.succeed(wrongPlatform(token)),
            { concurrency: "unbounded" }
          )

          // Refused credentials are ours, not the device's: the whole send fails, so the caller can stop.
          const refused = refusedCredentials(deliveries)
          if (refused !== undefined) {
            if (refused.status === 401) {
              yield* accessTokens.forget(accessToken)
            }
            return yield* Effect.fail(refused)
          }
          return deliveries
        })
    })
  })

export const layer = (options: FcmOptions): Layer.Layer<PushProvider, InvalidConfigError> =>
  Layer.effect(PushProvider, make(options))
