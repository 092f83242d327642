import { Array as Arr, Clock, Duration, Effect, Either, Random } from "effect"
import type { PushError, PushErrorReason } from "../domain/Errors.ts"
import { logEvent } from "./Logger.ts"
import type { PushRequest, TokenDelivery } from "./PushProvider.ts"

/**
 * Retrying sends that failed for now. Only the tokens that failed with a transient reason are
 * sent again, so a device that already has the message does not get it twice. The wait is an
 * exponential backoff with jitter, never shorter than what the provider asked for, and a retry is
 * only started while it fits before the deadline; otherwise the answer says `deferred` and a later
 * run may try again. All waiting goes through Effect's Clock.
 */

export interface RetryOptions {
  /** The latest moment, in epoch milliseconds on the run's Clock, at which another attempt may start. */
  readonly deadlineMs: number
  /** Attempts in all, the first one included. */
  readonly maxAttempts: number
  /** The backoff before the second attempt; it doubles with each further one. Defaults to 500 ms. */
  readonly baseDelayMs?: number
  /** The longest backoff, before the provider's own `Retry-After` is considered. Defaults to 8 s. */
  readonly maxDelayMs?: number
}

/**
 * How a notification's send ended. `Answered`: the provider answered for every token (some
 * answers may still be failures). `Failed`: the last attempt failed as a whole and no token was
 * answered before it. `deferred` is true when transient failures remain because the next attempt
 * would not have fitted before the deadline.
 */
export type RetryOutcome =
  | {
      readonly _tag: "Answered"
      readonly deliveries: ReadonlyArray<TokenDelivery>
      readonly attempts: number
      readonly deferred: boolean
    }
  | { readonly _tag: "Failed"; readonly error: PushError; readonly attempts: number; readonly deferred: boolean }

export type Send<R> = (request: PushRequest) => Effect.Effect<ReadonlyArray<TokenDelivery>, PushError, R>

/** Sends many notifications at once and answers for each, in the order asked, without failing as a whole. */
export type SendBatch<R> = (
  requests: ReadonlyArray<PushRequest>
) => Effect.Effect<ReadonlyArray<Either.Either<ReadonlyArray<TokenDelivery>, PushError>>, never, R>

type FailedDelivery = Extract<TokenDelivery, { readonly outcome: "failed" }>

const transientReasons: ReadonlySet<PushErrorReason> = new Set(["rate_limited", "unavailable", "timeout"])

/** Failures another attempt may cure: the provider was busy, down or slow. */
export const isTransient = (error: PushError): boolean => transientReasons.has(error.reason)

const DEFAULT_BASE_DELAY_MS = 500
const DEFAULT_MAX_DELAY_MS = 8_000

interface Progress {
  readonly request: PushRequest
  /** Answers another attempt would not change. */
  readonly settled: ReadonlyArray<TokenDelivery>
  /** The last failures of the tokens not settled yet. */
  readonly open: ReadonlyArray<FailedDelivery>
  /** The last attempt failed as a whole with this. */
  readonly error: PushError | undefined
  readonly attempts: number
  readonly done: boolean
}

const start = (request: PushRequest): Progress => ({
  request,
  settled: [],
  open: [],
  error: undefined,
  attempts: 0,
  done: false
})

const failed = (tokenId: string, error: PushError): FailedDelivery => ({ tokenId, outcome: "failed", error })

const isRetryable = (delivery: TokenDelivery): delivery is FailedDelivery =>
  delivery.outcome === "failed" && isTransient(delivery.error)

/** The request for the next attempt: only the tokens that have no final answer yet. */
const remaining = (progress: Progress): PushRequest => {
  if (progress.attempts === 0) {
    return progress.request
  }

  const open = new Set(progress.open.map((delivery) => delivery.tokenId))
  return { ...progress.request, tokens: progress.request.tokens.filter((token) => open.has(token.id)) }
}

const advance = (
  progress: Progress,
  answer: Either.Either<ReadonlyArray<TokenDelivery>, PushError>,
  sentTokenIds: ReadonlyArray<string>
): Progress =>
  Either.match(answer, {
    onLeft: (error) => ({
      ...progress,
      open: sentTokenIds.map((tokenId) => failed(tokenId, error)),
      error,
      attempts: progress.attempts + 1,
      done: !isTransient(error)
    }),
    onRight: (deliveries) => {
      const [settled, open] = Arr.partition(deliveries, isRetryable)
      return {
        ...progress,
        settled: [...progress.settled, ...settled],
        open,
        error: undefined,
        attempts: progress.attempts + 1,
        done: open.length === 0
      }
    }
  })

const inTokenOrder = (request: PushRequest, deliveries: ReadonlyArray<TokenDelivery>): ReadonlyArray<TokenDelivery> => {
  const position = new Map(request.tokens.map((token, index) => [token.id, index]))
  return [...deliveries].sort((a, b) => (position.get(a.tokenId) ?? 0) - (position.get(b.tokenId) ?? 0))
}

const finish = (progress: Progress, deferred: boolean): RetryOutcome => {
  const isDeferred = deferred && !progress.done

  if (progress.error !== undefined && progress.settled.length === 0) {
    return { _tag: "Failed", error: progress.error, attempts: progress.attempts, deferred: isDeferred }
  }

  return {
    _tag: "Answered",
    deliveries: inTokenOrder(progress.request, [...progress.settled, ...progress.open]),
    attempts: progress.attempts,
    deferred: isDeferred
  }
}

/** Backoff with "equal jitter": between half and all of the exponential step, so retries spread out. */
const backoffMs = (attempt: number, options: RetryOptions) =>
  Effect.gen(function* () {
    const base = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS
    const step = Math.min(options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS, base * 2 ** (attempt - 1))
    const jitter = yield* Random.next

    return Math.round(step / 2 + (jitter * step) / 2)
  })

const askedWaitMs = (open: ReadonlyArray<Progress>): number =>
  open.reduce(
    (longest, progress) =>
      progress.open.reduce((wait, delivery) => Math.max(wait, delivery.error.retryAfterMs ?? 0), longest),
    0
  )

const firstError = (open: ReadonlyArray<Progress>): PushError | undefined => open[0]?.open[0]?.error ?? open[0]?.error

const attemptAll = <R>(sendBatch: SendBatch<R>, progress: ReadonlyArray<Progress>) =>
  Effect.gen(function* () {
    const open = progress.filter((entry) => !entry.done)
    const requests = open.map(remaining)
    const answers = yield* sendBatch(requests)

    const advanced = new Map(
      open.map((entry, index) => [
        entry,
        advance(
          entry,
          answers[index],
          requests[index].tokens.map((token) => token.id)
        )
      ])
    )
    return progress.map((entry) => advanced.get(entry) ?? entry)
  })

const loop = <R>(
  sendBatch: SendBatch<R>,
  options: RetryOptions,
  progress: ReadonlyArray<Progress>,
  attempt: number
): Effect.Effect<ReadonlyArray<RetryOutcome>, never, R> =>
  Effect.gen(function* () {
    const after = yield* attemptAll(sendBatch, progress)
    const open = after.filter((entry) => !entry.done)

    if (open.length === 0 || attempt >= options.maxAttempts) {
      return after.map((entry) => finish(entry, false))
    }

    const waitMs = Math.max(yield* backoffMs(attempt, options), askedWaitMs(open))
    const nowMs = yield* Clock.currentTimeMillis
    const fields = {
      provider: firstError(open)?.provider,
      reason: firstError(open)?.reason,
      attempt,
      wait_ms: waitMs,
      notifications: open.length
    }

    // Waiting past the deadline would only end in the run being cut off mid-send.
    if (nowMs + waitMs > options.deadlineMs) {
      yield* logEvent("debug", "push_retry_deferred", fields)
      return after.map((entry) => finish(entry, true))
    }

    yield* logEvent("debug", "push_retry_scheduled", fields)
    yield* Effect.sleep(Duration.millis(waitMs))
    return yield* loop(sendBatch, options, after, attempt + 1)
  })

/** Retries a batch send: every attempt sends, in one batch, what is still open of every notification. */
export const withBatchRetries =
  <R>(sendBatch: SendBatch<R>, options: RetryOptions) =>
  (requests: ReadonlyArray<PushRequest>): Effect.Effect<ReadonlyArray<RetryOutcome>, never, R> =>
    requests.length === 0 ? Effect.succeed([]) : loop(sendBatch, options, requests.map(start), 1)

/** Retries a single-notification send (a provider's `send`) on transient failures, within the deadline. */
export const withRetries = <R>(send: Send<R>, options: RetryOptions) => {
  const sendBatch: SendBatch<R> = (requests) =>
    Effect.forEach(requests, (request) => Effect.either(send(request)), { concurrency: "unbounded" })
  const retried = withBatchRetries(sendBatch, options)

  return (request: PushRequest): Effect.Effect<RetryOutcome, never, R> =>
    Effect.map(retried([request]), (outcomes) => outcomes[0])
}
