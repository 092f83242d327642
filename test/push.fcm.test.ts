import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, ConfigProvider, Effect, Fiber, Redacted, TestClock } from "effect"
import { InvalidConfigError, type PushError } from "../src/domain/Errors.ts"
import type { PushTokenRow } from "../src/domain/Evaluation.ts"
import { renderMessage } from "../src/domain/Message.ts"
import * as FcmProvider from "../src/services/FcmProvider.ts"
import { decodeServiceAccount, pushProviderLayer } from "../src/services/PushConfig.ts"
import { makeRequestLimiter, parseRetryAfter } from "../src/services/PushHttp.ts"
import { PushProvider, type PushRequest, type TokenDelivery } from "../src/services/PushProvider.ts"
import { type RetryOutcome, withRetries } from "../src/services/PushRetry.ts"
import { makeLogCapture } from "./support/captureLogs.ts"
import { listen, type Reply } from "./support/jsonServer.ts"

// ---------------------------------------------------------------------------------------------
// A fake service account, signed for real
// ---------------------------------------------------------------------------------------------

const PROJECT_ID = "mentor-app-test"
const CLIENT_EMAIL = "scheduler@mentor-app-test.iam.gserviceaccount.com"

const keyPair = await crypto.subtle.generateKey(
  { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
  true,
  ["sign", "verify"]
)

const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey)).toString("base64")
const PRIVATE_KEY_PEM = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join("\n")}\n-----END PRIVATE KEY-----\n`

const serviceAccountJson = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "service_account",
    project_id: PROJECT_ID,
    private_key_id: "0123456789abcdef",
    private_key: PRIVATE_KEY_PEM,
    client_email: CLIENT_EMAIL,
    ...fields
  })

const serviceAccount = Effect.runSync(decodeServiceAccount(Redacted.make(serviceAccountJson())))

// ---------------------------------------------------------------------------------------------
// A local server answering as Google's token endpoint and FCM
// ---------------------------------------------------------------------------------------------

interface FcmCall {
  readonly index: number
  readonly authorization: string | undefined
  readonly message: {
    readonly token: string
    readonly notification: { readonly title: string; readonly body: string }
    readonly data: Record<string, unknown>
  }
}

interface Grant {
  readonly assertion: string
  readonly header: Record<string, unknown>
  readonly claims: Record<string, unknown>
}

const decodeSegment = (segment: string) => JSON.parse(Buffer.from(segment, "base64url").toString("utf8"))

/** Checks the assertion's RS256 signature with the service account's public key, as Google does. */
const verifyAssertion = async (assertion: string): Promise<Grant | undefined> => {
  const [header, claims, signature] = assertion.split(".")
  const valid = await crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    keyPair.publicKey,
    Buffer.from(signature ?? "", "base64url"),
    new TextEncoder().encode(`${header}.${claims}`)
  )
  return valid ? { assertion, header: decodeSegment(header), claims: decodeSegment(claims) } : undefined
}

const accessTokenValue = (n: number) => `ya29.test-access-token-${n}-${"q".repeat(24)}`

const fcmError = (status: number, grpcStatus: string, errorCode?: string): Reply => ({
  status,
  body: {
    error: {
      code: status,
      message: "Requested entity was not found.",
      status: grpcStatus,
      details: errorCode ? [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }] : []
    }
  }
})

const ok: Reply = { status: 200, body: { name: `projects/${PROJECT_ID}/messages/0:1700000000000000%abc` } }

interface GoogleScript {
  readonly fcm?: (call: FcmCall) => Reply
  readonly oauth?: (grant: Grant | undefined) => Reply | undefined
}

/** Starts the fake; every OAuth grant and FCM call is recorded. */
const startGoogle = (script: GoogleScript = {}) =>
  Effect.gen(function* () {
    const grants: Array<Grant> = []
    const fcmCalls: Array<FcmCall> = []
    const issued: Array<string> = []

    const server = yield* listen(async (request) => {
      if (request.path === "/token") {
        const form = new URLSearchParams(request.body)
        const grant =
          form.get("grant_type") === "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ? await verifyAssertion(form.get("assertion") ?? "")
            : undefined
        const scripted = script.oauth?.(grant)
        if (scripted) {
          return scripted
        }
        if (grant === undefined) {
          return { status: 400, body: { error: "invalid_grant", error_description: "Invalid JWT Signature." } }
        }

        grants.push(grant)
        issued.push(accessTokenValue(issued.length + 1))
        return { status: 200, body: { access_token: issued.at(-1), expires_in: 3599, token_type: "Bearer" } }
      }

      if (request.path === `/v1/projects/${PROJECT_ID}/messages:send`) {
        const call: FcmCall = {
          index: fcmCalls.length,
          authorization: request.headers.authorization,
          message: JSON.parse(request.body).message
        }
        fcmCalls.push(call)
        if (call.authorization !== `Bearer ${issued.at(-1)}`) {
          return fcmError(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")
        }
        return script.fcm?.(call) ?? ok
      }

      return { status: 418, body: { error: `unexpected path ${request.path}` } }
    })

    const options: FcmProvider.FcmOptions = {
      serviceAccount,
      baseUrl: server.url,
      oauthUrl: `${server.url}/token`,
      // Long enough that moving TestClock to a retry never times out a request in flight.
      requestTimeoutMs: 60_000,
      limits: { maxConcurrency: 4, maxRequestsPerSecond: 1_000 }
    }
    const provider = yield* FcmProvider.make(options)

    return { url: server.url, options, provider, grants, fcmCalls, issued }
  })

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

const TOKENS = {
  first: "fcm-device-token-first-7d1b3a9c",
  second: "fcm-device-token-second-e42f8810",
  gone: "fcm-device-token-gone-55aa0c3d"
}

const fcmToken = (id: string, value: string): PushTokenRow => ({ id, token: Redacted.make(value), platform: "fcm" })

const notificationId = "2b6f2d0e-6c1f-4b53-9f55-0e4a4c8c1d10"

const requestTo = (tokens: ReadonlyArray<PushTokenRow>): PushRequest => ({
  notificationId,
  userId: "6d0c0e52-2f0c-4d1b-8a43-5c2a8d1c7e01",
  scenarioType: "milestone",
  content: renderMessage("milestone", notificationId, { threshold: 25, streak: { weeks: 3 }, verified: true }),
  tokens
})

const oneToken = requestTo([fcmToken("11", TOKENS.first)])

const failureOf = (delivery: TokenDelivery | undefined): PushError => {
  if (delivery?.outcome !== "failed") {
    throw new Error(`expected a failed delivery, got ${delivery?.outcome}`)
  }
  return delivery.error
}

const answered = (outcome: RetryOutcome) => {
  if (outcome._tag !== "Answered") {
    throw new Error(`expected an answer, got ${outcome.error.reason}`)
  }
  return outcome
}

// Real I/O happens while TestClock stands still, so a test waits, in real time, for the send
// under test to reach its retry sleep before moving the clock.
const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))

// TestClock keeps the sleeps of finished timeouts too, hence the count.
const awaitSleepUntil = (wakeAtMs: number, count = 1) =>
  Effect.gen(function* () {
    for (let round = 0; round < 1_000; round++) {
      if (Chunk.size(Chunk.filter(yield* TestClock.sleeps(), (at) => at === wakeAtMs)) >= count) {
        return
      }
      yield* realPause
    }
    return yield* Effect.dieMessage(`nothing slept until ${wakeAtMs}`)
  })

const retryWithin = (budgetMs: number) =>
  Effect.map(Clock.currentTimeMillis, (nowMs) => ({ deadlineMs: nowMs + budgetMs, maxAttempts: 4 }))

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("FCM access token", () => {
  it.scoped("is obtained with a signed JWT once and reused across sends", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle()

      yield* google.provider.send(oneToken)
      yield* google.provider.send(requestTo([fcmToken("12", TOKENS.second)]))

      expect(google.grants).toHaveLength(1)
      expect(google.grants[0].header).toMatchObject({ alg: "RS256", typ: "JWT" })
      expect(google.grants[0].claims).toMatchObject({
        iss: CLIENT_EMAIL,
        scope: "https://www.googleapis.com/auth/firebase.messaging",
        aud: `${google.url}/token`
      })
      expect(Number(google.grants[0].claims.exp) - Number(google.grants[0].claims.iat)).toBe(3600)
      expect(google.fcmCalls.map((call) => call.authorization)).toEqual([
        `Bearer ${google.issued[0]}`,
        `Bearer ${google.issued[0]}`
      ])
    })
  )

  it.scoped("is refreshed a minute before it expires", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle()

      yield* google.provider.send(oneToken)
      yield* TestClock.adjust("3538 seconds")
      yield* google.provider.send(oneToken)
      expect(google.grants).toHaveLength(1)

      yield* TestClock.adjust("2 seconds")
      yield* google.provider.send(oneToken)

      expect(google.grants).toHaveLength(2)
      expect(google.fcmCalls.at(-1)?.authorization).toBe(`Bearer ${google.issued[1]}`)
    })
  )

  it.scoped("a refused grant is an authentication failure of the whole send", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({ oauth: () => ({ status: 400, body: { error: "invalid_grant" } }) })

      const error = yield* Effect.flip(google.provider.send(oneToken))

      expect(error).toMatchObject({ _tag: "PushError", provider: "fcm", reason: "authentication", status: 400 })
      expect(google.fcmCalls).toHaveLength(0)
    })
  )
})

describe("FCM messages", () => {
  it.scoped("carry the title and body, and every data value as a string", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle()

      const deliveries = yield* google.provider.send(oneToken)

      expect(deliveries).toEqual([{ tokenId: "11", outcome: "delivered" }])
      const message = google.fcmCalls[0].message
      expect(message.token).toBe(TOKENS.first)
      expect(message.notification).toEqual({ title: oneToken.content.title, body: oneToken.content.body })
      expect(Object.keys(message.data)).toEqual(
        expect.arrayContaining(["scenario_type", "notification_id", "threshold", "streak", "verified"])
      )
      for (const value of Object.values(message.data)) {
        expect(typeof value).toBe("string")
      }
    })
  )

  it.scoped("400 INVALID_ARGUMENT is an invalid payload and the token is kept", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({ fcm: () => fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT") })

      const deliveries = yield* google.provider.send(oneToken)

      expect(deliveries.some((delivery) => delivery.outcome === "unregistered")).toBe(false)
      expect(failureOf(deliveries[0])).toMatchObject({ reason: "invalid_payload", status: 400 })
    })
  )

  it.scoped("404 UNREGISTERED marks only that token unregistered", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({
        fcm: (call) => (call.message.token === TOKENS.gone ? fcmError(404, "NOT_FOUND", "UNREGISTERED") : ok)
      })

      const deliveries = yield* google.provider.send(
        requestTo([fcmToken("21", TOKENS.first), fcmToken("22", TOKENS.gone), fcmToken("23", TOKENS.second)])
      )

      expect(deliveries).toEqual([
        { tokenId: "21", outcome: "delivered" },
        { tokenId: "22", outcome: "unregistered" },
        { tokenId: "23", outcome: "delivered" }
      ])
    })
  )

  it.scoped("a bare 404 fails the token as invalid without revoking it", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({ fcm: () => fcmError(404, "NOT_FOUND") })

      const deliveries = yield* google.provider.send(oneToken)

      expect(deliveries[0].outcome).toBe("failed")
      expect(failureOf(deliveries[0])).toMatchObject({ reason: "invalid_token", status: 404 })
    })
  )

  it.scoped("401 on every send is an authentication failure, not retried", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({ fcm: () => fcmError(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR") })
      const send = withRetries(google.provider.send, yield* retryWithin(20_000))

      const first = yield* send(oneToken)
      const second = yield* send(oneToken)

      for (const outcome of [first, second]) {
        expect(outcome).toMatchObject({ _tag: "Failed", attempts: 1, deferred: false })
        expect(outcome._tag === "Failed" && outcome.error).toMatchObject({ reason: "authentication", status: 401 })
      }
      expect(google.fcmCalls).toHaveLength(2)
      // The refused access token is forgotten, so the next send asks for a new one.
      expect(google.grants).toHaveLength(2)
    })
  )

  it.scoped("a request that gets no answer in time fails the token with a timeout", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({ fcm: () => ({ status: 200, hang: true }) })

      const fiber = yield* Effect.fork(google.provider.send(oneToken))
      // One timeout for the access token request, already answered, and one for the message.
      yield* awaitSleepUntil(60_000, 2)
      yield* TestClock.adjust("60 seconds")
      const deliveries = yield* Fiber.join(fiber)

      expect(failureOf(deliveries[0])).toMatchObject({ reason: "timeout" })
    })
  )

  it.scoped("times out even where the program does not let a shutdown interrupt the send", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({ fcm: () => ({ status: 200, hang: true }) })

      // The program sends a wave uninterruptibly; the request's own timeout must still end it.
      const fiber = yield* Effect.fork(Effect.uninterruptible(google.provider.send(oneToken)))
      yield* awaitSleepUntil(60_000, 2)
      yield* TestClock.adjust("60 seconds")
      const deliveries = yield* Fiber.join(fiber)

      expect(failureOf(deliveries[0])).toMatchObject({ reason: "timeout" })
    })
  )
})

describe("FCM retries", () => {
  it.scoped("a 503 with Retry-After is waited out and retried once", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({
        fcm: (call) =>
          call.index === 0 ? { ...fcmError(503, "UNAVAILABLE", "UNAVAILABLE"), headers: { "retry-after": "2" } } : ok
      })
      const send = withRetries(google.provider.send, yield* retryWithin(20_000))

      const fiber = yield* Effect.fork(send(oneToken))
      yield* awaitSleepUntil(2_000)
      yield* TestClock.adjust("2 seconds")
      const outcome = answered(yield* Fiber.join(fiber))

      expect(outcome.attempts).toBe(2)
      expect(outcome.deliveries).toEqual([{ tokenId: "11", outcome: "delivered" }])
      expect(google.fcmCalls).toHaveLength(2)
    })
  )

  it.scoped("only the tokens that failed for now are sent again", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({
        fcm: (call) =>
          call.message.token === TOKENS.second && call.index < 2
            ? { ...fcmError(503, "UNAVAILABLE"), headers: { "retry-after": "1" } }
            : ok
      })
      const send = withRetries(google.provider.send, yield* retryWithin(20_000))

      const fiber = yield* Effect.fork(send(requestTo([fcmToken("31", TOKENS.first), fcmToken("32", TOKENS.second)])))
      yield* awaitSleepUntil(1_000)
      yield* TestClock.adjust("1 second")
      const outcome = answered(yield* Fiber.join(fiber))

      expect(outcome.deliveries.map((delivery) => delivery.outcome)).toEqual(["delivered", "delivered"])
      expect(google.fcmCalls.map((call) => call.message.token)).toEqual([TOKENS.first, TOKENS.second, TOKENS.second])
    })
  )

  it.scoped("a 429 asking for longer than the budget leaves is deferred after one request", () =>
    Effect.gen(function* () {
      const google = yield* startGoogle({
        fcm: () => ({ ...fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), headers: { "retry-after": "120" } })
      })
      const send = withRetries(google.provider.send, yield* retryWithin(30_000))

      const outcome = yield* send(oneToken)

      expect(outcome).toMatchObject({ _tag: "Answered", attempts: 1, deferred: true })
      expect(failureOf(answered(outcome).deliveries[0])).toMatchObject({
        reason: "rate_limited",
        status: 429,
        retryAfterMs: 120_000
      })
      expect(google.fcmCalls).toHaveLength(1)
    })
  )
})

describe("FCM secrets", () => {
  it.scoped("no token, key, access token or service account text reaches an error or a log line", () =>
    Effect.gen(function* () {
      const logs = makeLogCapture()
      const errors: Array<PushError | InvalidConfigError> = []
      const keep = (deliveries: ReadonlyArray<TokenDelivery>) => {
        for (const delivery of deliveries) {
          if (delivery.outcome === "failed") {
            errors.push(delivery.error)
          }
        }
      }

      const replies = [
        fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
        fcmError(404, "NOT_FOUND"),
        { ...fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), headers: { "retry-after": "600" } },
        fcmError(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
        fcmError(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")
      ]
      const google = yield* startGoogle({ fcm: (call) => replies[call.index] ?? ok })
      const send = withRetries(google.provider.send, yield* retryWithin(10_000))
      const request = requestTo([fcmToken("41", TOKENS.first), fcmToken("42", TOKENS.second)])

      yield* Effect.gen(function* () {
        for (let round = 0; round < 3; round++) {
          const outcome = yield* send(request)
          if (outcome._tag === "Failed") {
            errors.push(outcome.error)
          } else {
            keep(outcome.deliveries)
          }
        }
      }).pipe(Effect.provide(logs.layer))

      const refused = yield* startGoogle({ oauth: () => ({ status: 401, body: { error: "invalid_client" } }) })
      errors.push(yield* Effect.flip(refused.provider.send(request)))
      errors.push(yield* Effect.flip(decodeServiceAccount(Redacted.make(serviceAccountJson({ project_id: 7 })))))
      errors.push(yield* Effect.flip(decodeServiceAccount(Redacted.make(`${serviceAccountJson()}}`))))

      const secrets = [
        ...Object.values(TOKENS),
        ...google.issued,
        pkcs8.slice(100, 140),
        "PRIVATE KEY",
        CLIENT_EMAIL,
        ...google.grants.map((grant) => grant.assertion.split(".")[2].slice(0, 40))
      ]
      const texts = [...errors.map((error) => error.message), ...logs.lines()]
      expect(errors.length).toBeGreaterThanOrEqual(6)
      expect(logs.lines().length).toBeGreaterThan(0)
      for (const secret of secrets) {
        for (const text of texts) {
          expect(text).not.toContain(secret)
        }
      }
    })
  )
})

describe("push configuration", () => {
  it.effect("names a missing or unusable service account field without quoting it", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(
        decodeServiceAccount(Redacted.make(JSON.stringify({ project_id: PROJECT_ID, client_email: CLIENT_EMAIL })))
      )
      const notAKey = yield* Effect.flip(
        decodeServiceAccount(Redacted.make(serviceAccountJson({ private_key: "not-a-key-but-secret-anyway" })))
      )

      expect(missing).toBeInstanceOf(InvalidConfigError)
      expect(missing).toMatchObject({ reason: "environment" })
      expect(missing.message).toContain("private_key is missing")
      expect(notAKey.message).toContain("private_key")
      expect(notAKey.message).not.toContain("not-a-key-but-secret-anyway")
    })
  )

  it.effect("a private key Web Crypto cannot import fails when the provider is made", () =>
    Effect.gen(function* () {
      const broken = yield* decodeServiceAccount(
        Redacted.make(
          serviceAccountJson({ private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" })
        )
      )
      const error = yield* Effect.flip(
        FcmProvider.make({
          serviceAccount: broken,
          baseUrl: "http://127.0.0.1:9",
          oauthUrl: "http://127.0.0.1:9/token",
          requestTimeoutMs: 1_000,
          limits: { maxConcurrency: 1, maxRequestsPerSecond: 1 }
        })
      )

      expect(error).toMatchObject({ _tag: "InvalidConfigError", reason: "environment" })
      expect(error.message).not.toContain("AAAA")
    })
  )

  it.effect("PUSH_PROVIDER chooses the provider layer", () =>
    Effect.gen(function* () {
      const nameWith = (entries: ReadonlyArray<readonly [string, string]>) =>
        Effect.map(PushProvider, (provider) => provider.name).pipe(
          Effect.provide(pushProviderLayer("/tmp/unused-outbox.jsonl")),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))
        )

      expect(
        yield* nameWith([
          ["PUSH_PROVIDER", "fcm"],
          ["FCM_SERVICE_ACCOUNT", serviceAccountJson()]
        ])
      ).toBe("fcm")
      expect(yield* nameWith([["PUSH_PROVIDER", "expo"]])).toBe("expo")

      const unset = yield* Effect.flip(nameWith([["PUSH_PROVIDER", "fcm"]]))
      expect(unset).toMatchObject({ _tag: "InvalidConfigError", reason: "environment" })
      expect(unset.message).toContain("FCM_SERVICE_ACCOUNT")
    })
  )
})

describe("request limits", () => {
  it.effect("start at most the configured number of requests per second", () =>
    Effect.gen(function* () {
      const limiter = yield* makeRequestLimiter({ maxConcurrency: 10, maxRequestsPerSecond: 2 })
      const startedAt: Array<number> = []
      const request = Effect.flatMap(Clock.currentTimeMillis, (nowMs) => Effect.sync(() => startedAt.push(nowMs)))

      const fiber = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 5 }, () => limiter.limit(request)),
          { concurrency: 5 }
        )
      )
      yield* awaitSleepUntil(1_500)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)

      expect(startedAt.sort((a, b) => a - b)).toEqual([0, 0, 500, 1_000, 1_500])
    })
  )

  it.effect("bound the requests in flight", () =>
    Effect.gen(function* () {
      const limiter = yield* makeRequestLimiter({ maxConcurrency: 2, maxRequestsPerSecond: 100 })
      let inFlight = 0
      let most = 0
      const request = Effect.gen(function* () {
        inFlight += 1
        most = Math.max(most, inFlight)
        yield* Effect.yieldNow()
        inFlight -= 1
      })

      yield* Effect.all(
        Array.from({ length: 8 }, () => limiter.limit(request)),
        { concurrency: "unbounded" }
      )

      expect(most).toBe(2)
    })
  )

  it("Retry-After is read as seconds or as an HTTP date", () => {
    const nowMs = Date.parse("2026-12-04T06:00:00Z")

    expect(parseRetryAfter("3", nowMs)).toBe(3_000)
    expect(parseRetryAfter("Fri, 04 Dec 2026 06:00:30 GMT", nowMs)).toBe(30_000)
    expect(parseRetryAfter("Fri, 04 Dec 2026 05:00:00 GMT", nowMs)).toBe(0)
    expect(parseRetryAfter("soon", nowMs)).toBeUndefined()
    expect(parseRetryAfter(null, nowMs)).toBeUndefined()
  })
})
