import { Clock, Duration, Effect, Ref } from "effect"
import { PushError, type PushErrorReason } from "../domain/Errors.ts"

/**
 * The HTTP plumbing the network push providers share: one JSON request with a timeout, the
 * `Retry-After` header, the reasons an HTTP status stands for, and a bound on how many requests a
 * provider has in flight and starts per second. Only `fetch` and Effect's Clock are used, so it
 * runs the same on Node and Deno and under TestClock.
 */

/** What a provider answered: the status, how long it asked us to wait, and the body when it was JSON. */
export interface HttpAnswer {
  readonly status: number
  readonly retryAfterMs: number | undefined
  readonly body: unknown
}

export interface HttpPost {
  /** The provider the request is for, as errors name it. */
  readonly provider: string
  /** Who is being asked, in words, for error messages. */
  readonly target: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly timeoutMs: number
}

interface RawAnswer {
  readonly status: number
  readonly retryAfter: string | null
  readonly body: unknown
}

const parseBody = (text: string): unknown => {
  if (text === "") {
    return undefined
  }

  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const readAnswer = async (response: Response): Promise<RawAnswer> => ({
  status: response.status,
  retryAfter: response.headers.get("retry-after"),
  body: parseBody(await response.text())
})

/**
 * `Retry-After` is either a number of seconds or an HTTP date. A date in the past means "now";
 * anything unreadable is ignored.
 */
export const parseRetryAfter = (value: string | null, nowMs: number): number | undefined => {
  const text = value?.trim() ?? ""

  if (/^\d+(\.\d+)?$/.test(text)) {
    return Math.round(Number(text) * 1000)
  }

  const at = text === "" ? Number.NaN : Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

/**
 * POSTs one request and reads the answer. The failure channel is only for requests that got no
 * answer (unreachable, timed out); an HTTP error status is an answer. Messages never carry the
 * request or the cause's text: both may hold a token or a key.
 */
export const post = (request: HttpPost): Effect.Effect<HttpAnswer, PushError> =>
  Effect.tryPromise({
    try: (signal) =>
      fetch(request.url, { method: "POST", headers: request.headers, body: request.body, signal }).then(readAnswer),
    catch: () =>
      new PushError({ provider: request.provider, reason: "unavailable", message: `could not reach ${request.target}` })
  }).pipe(
    // Interrupting the request aborts the fetch through its signal. The program sends a wave without
    // letting a shutdown interrupt it, so the request itself must stay interruptible for the timeout.
    Effect.interruptible,
    Effect.timeoutFail({
      duration: Duration.millis(request.timeoutMs),
      onTimeout: () =>
        new PushError({
          provider: request.provider,
          reason: "timeout",
          message: `${request.target} did not answer within ${request.timeoutMs} ms`
        })
    }),
    Effect.flatMap((raw) =>
      Effect.map(Clock.currentTimeMillis, (nowMs) => ({
        status: raw.status,
        retryAfterMs: parseRetryAfter(raw.retryAfter, nowMs),
        body: raw.body
      }))
    )
  )

export const isSuccess = (status: number): boolean => status >= 200 && status < 300

/** The reason an HTTP error status stands for when the provider says nothing more specific. */
export const reasonForStatus = (status: number): PushErrorReason => {
  if (status === 400 || status === 413) {
    return "invalid_payload"
  }
  if (status === 401 || status === 403) {
    return "authentication"
  }
  if (status === 429) {
    return "rate_limited"
  }

  // Gateways in front of the providers answer 502 and 504 for the same outages as 500 and 503.
  return status >= 500 ? "unavailable" : "unknown"
}

/** Provider error codes are quoted in messages only when they look like codes, never free text. */
export const codeOrNothing = (value: unknown): string | undefined =>
  typeof value === "string" && /^[A-Za-z_]{1,64}$/.test(value) ? value : undefined

// ---------------------------------------------------------------------------------------------
// Request limits
// ---------------------------------------------------------------------------------------------

export interface RequestLimits {
  /** Requests a provider has in flight at once. */
  readonly maxConcurrency: number
  /** Requests a provider starts per second, with bursts of up to this many. */
  readonly maxRequestsPerSecond: number
}

export interface RequestLimiter {
  readonly limit: <A, E, R>(request: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

interface Bucket {
  readonly tokens: number
  readonly updatedAtMs: number
}

/**
 * A token bucket on the run's Clock. Each caller reserves a token, possibly one that is not there
 * yet (the count goes below zero), and sleeps until it would have been: callers are served in the
 * order they asked, and the state is changed without holding a lock across the sleep.
 */
const makeTokenBucket = (perSecond: number) =>
  Effect.gen(function* () {
    const startedAtMs = yield* Clock.currentTimeMillis
    const bucket = yield* Ref.make<Bucket>({ tokens: perSecond, updatedAtMs: startedAtMs })

    const reserve = (nowMs: number) =>
      Ref.modify(bucket, (state): [number, Bucket] => {
        const at = Math.max(nowMs, state.updatedAtMs)
        const refilled = Math.min(perSecond, state.tokens + ((at - state.updatedAtMs) * perSecond) / 1000)
        const tokens = refilled - 1
        const waitMs = tokens >= 0 ? 0 : Math.ceil((-tokens * 1000) / perSecond)
        return [waitMs, { tokens, updatedAtMs: at }]
      })

    return Clock.currentTimeMillis.pipe(
      Effect.flatMap(reserve),
      Effect.flatMap((waitMs) => (waitMs > 0 ? Effect.sleep(Duration.millis(waitMs)) : Effect.void))
    )
  })

/** Bounds one provider's requests: at most `maxConcurrency` in flight, at most `maxRequestsPerSecond` started. */
export const makeRequestLimiter = (limits: RequestLimits): Effect.Effect<RequestLimiter> =>
  Effect.gen(function* () {
    const permits = yield* Effect.makeSemaphore(limits.maxConcurrency)
    const takeToken = yield* makeTokenBucket(limits.maxRequestsPerSecond)

    return {
      limit: (request) => permits.withPermits(1)(Effect.zipRight(takeToken, request))
    }
  })
