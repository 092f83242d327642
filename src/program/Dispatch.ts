import { Array as Arr, Clock, Effect, Either, Option, Ref } from "effect"
import { type DatabaseError, errorType, PushError } from "../domain/Errors.ts"
import type { ClaimedNotification, DispatchResult, DispatchStatus } from "../domain/Evaluation.ts"
import { renderMessage } from "../domain/Message.ts"
import type { SentTicket } from "../domain/Receipts.ts"
import { emit } from "../services/Logger.ts"
import { PushProvider, type PushProviderApi, type PushRequest } from "../services/PushProvider.ts"
import { type RetryOutcome, withBatchRetries, withRetries } from "../services/PushRetry.ts"
import { Store } from "../services/Store.ts"

/** What the run shares between all the pages it sends. */
export interface DispatchContext {
  /** The run: only it may mark and record the notifications it claimed. */
  readonly invocationId: string
  readonly concurrency: number
  /**
   * Epoch ms on the run's Clock after which no retry starts: what still fails for now is deferred.
   * First attempts of a page the guard admitted always start, so a page is finished once begun.
   */
  readonly retryDeadlineMs: number
  /**
   * Epoch ms after which not even a first attempt starts. Later than the retry deadline, so that a
   * page once begun is normally finished, but bounded, so that a provider that stalls every request
   * cannot hold a run past the Edge Function's wall clock.
   */
  readonly sendDeadlineMs: number
  readonly maxAttempts: number
  /**
   * Set by the first send the provider refuses for bad credentials. From then on nothing more is sent:
   * every other send would fail the same way, and the run fails with this one error instead.
   */
  readonly credentialsRefused: Ref.Ref<Option.Option<PushError>>
}

/** How one claimed notification ended in this run. */
export type NotificationOutcome =
  | { readonly _tag: "Dispatched" }
  | { readonly _tag: "NoLiveToken" }
  | { readonly _tag: "Deferred"; readonly error: PushError }
  | { readonly _tag: "Failed"; readonly error: PushError }

export interface Dispatched {
  readonly notification: ClaimedNotification
  readonly outcome: NotificationOutcome
}

const requestOf = (notification: ClaimedNotification): PushRequest => ({
  notificationId: notification.notification_id,
  userId: notification.user_id,
  scenarioType: notification.scenario_type,
  content: renderMessage(notification.scenario_type, notification.notification_id, notification.payload),
  tokens: notification.tokens
})

const everyDeviceGone = new PushError({
  provider: "scheduler",
  reason: "unregistered_token",
  message: "every device of the mentor is unregistered"
})

/** Delivered to one device is delivered; otherwise the first failure says why, and whether to try again later. */
const outcomeOf = (retry: RetryOutcome): NotificationOutcome => {
  if (retry._tag === "Failed") {
    return retry.deferred || retry.error.reason === "authentication"
      ? { _tag: "Deferred", error: retry.error }
      : { _tag: "Failed", error: retry.error }
  }

  if (retry.deliveries.some((delivery) => delivery.outcome === "delivered")) return { _tag: "Dispatched" }

  const failure = retry.deliveries.find((delivery) => delivery.outcome === "failed")
  if (failure === undefined) return { _tag: "Failed", error: everyDeviceGone }
  return retry.deferred ? { _tag: "Deferred", error: failure.error } : { _tag: "Failed", error: failure.error }
}

const revokedTokens = (retry: RetryOutcome | undefined): ReadonlyArray<string> =>
  retry?._tag === "Answered"
    ? retry.deliveries.filter((delivery) => delivery.outcome === "unregistered").map((d) => d.tokenId)
    : []

const statusOf: Record<NotificationOutcome["_tag"], DispatchStatus> = {
  Dispatched: "dispatched",
  NoLiveToken: "failed",
  Deferred: "deferred",
  Failed: "failed"
}

const resultOf = (dispatched: Dispatched, retry: RetryOutcome | undefined): DispatchResult => ({
  notification_id: dispatched.notification.notification_id,
  status: statusOf[dispatched.outcome._tag],
  error_type: "error" in dispatched.outcome ? errorType(dispatched.outcome.error) : null,
  revoked_token_ids: revokedTokens(retry)
})

/** A send not attempted: known not delivered, so a later run may try it. */
const refusedOutcome = (error: PushError): RetryOutcome => ({ _tag: "Failed", error, attempts: 0, deferred: true })

const isRefusal = (outcome: RetryOutcome) => outcome._tag === "Failed" && outcome.error.reason === "authentication"

/** Remembers the first refusal of the run's credentials, so that nothing more is sent. */
const noteRefusals = (context: DispatchContext, outcomes: ReadonlyArray<RetryOutcome>) => {
  const refusal = outcomes.find(isRefusal)
  return refusal?._tag === "Failed"
    ? Ref.update(
        context.credentialsRefused,
        Option.orElseSome(() => refusal.error)
      )
    : Effect.void
}

/**
 * Runs `send` unless the credentials were already refused, in which case nothing is sent and every
 * notification is deferred to the next run.
 */
const unlessRefused = (
  context: DispatchContext,
  count: number,
  send: Effect.Effect<ReadonlyArray<RetryOutcome>>
): Effect.Effect<ReadonlyArray<RetryOutcome>> =>
  Effect.gen(function* () {
    const refused = yield* Ref.get(context.credentialsRefused)
    const overdue = (yield* Clock.currentTimeMillis) >= context.sendDeadlineMs
    const stop = Option.isSome(refused) ? refused.value : overdue ? sendingOverdue : undefined
    if (stop !== undefined) return Array.from({ length: count }, () => refusedOutcome(stop))

    const outcomes = yield* send
    yield* noteRefusals(context, outcomes)
    return outcomes
  })

/** Past the hard deadline nothing more is sent; the rest waits, deferred, for the next run. */
const sendingOverdue = new PushError({
  provider: "scheduler",
  reason: "timeout",
  message: "the run passed its deadline for sending; the notification is left for the next run"
})

/** Sends through the provider's batch API when it has one, one request per notification otherwise. */
const sendAll = (
  provider: PushProviderApi,
  requests: ReadonlyArray<PushRequest>,
  context: DispatchContext
): Effect.Effect<ReadonlyArray<RetryOutcome>> => {
  const retryOptions = { deadlineMs: context.retryDeadlineMs, maxAttempts: context.maxAttempts }

  if (provider.sendBatch !== undefined) {
    return unlessRefused(context, requests.length, withBatchRetries(provider.sendBatch, retryOptions)(requests))
  }

  const send = withRetries(provider.send, retryOptions)
  return Effect.forEach(
    requests,
    (request) => unlessRefused(context, 1, send(request).pipe(Effect.map((outcome) => [outcome]))),
    { concurrency: context.concurrency }
  ).pipe(Effect.map((outcomes) => outcomes.flat()))
}

const reachableBy = (provider: PushProviderApi, notification: ClaimedNotification): ClaimedNotification => {
  const platforms = provider.platforms
  return platforms === undefined
    ? notification
    : { ...notification, tokens: notification.tokens.filter((token) => platforms.includes(token.platform)) }
}

/** Failures of the run rather than of a mentor: they are reported once, for the run, not per mentor. */
export const isRunLevelFailure = (error: PushError): boolean =>
  error.reason === "authentication" || error === sendingOverdue

/**
 * Notifications sent between a mark and a record. A crash loses certainty about one wave at most: its
 * notifications are the only ones marked as being sent without a result. Claimed notifications of
 * later waves were never marked, so a later run sends them. Larger waves cost fewer statements.
 */
export const waveSize = 100

/** The tickets of the wave's answered sends, each with its notification, for a later run to ask for receipts. */
const ticketsOfWave = (
  provider: PushProviderApi,
  sent: ReadonlyArray<{ readonly dispatched: Dispatched; readonly retry: RetryOutcome | undefined }>
): ReadonlyArray<SentTicket> => {
  const ticketsOf = provider.ticketsOf
  if (ticketsOf === undefined) return []

  return sent.flatMap(({ dispatched, retry }) =>
    retry?._tag === "Answered"
      ? ticketsOf(retry.deliveries).map((ticket) => ({
          ...ticket,
          notificationId: dispatched.notification.notification_id
        }))
      : []
  )
}

/**
 * Stores the wave's tickets in one statement. The sends are already recorded, so a failure here costs only the
 * receipt check of these tickets: it is reported and the run goes on.
 */
const recordTickets = (
  provider: PushProviderApi,
  sent: ReadonlyArray<{ readonly dispatched: Dispatched; readonly retry: RetryOutcome | undefined }>
) =>
  Effect.gen(function* () {
    const tickets = ticketsOfWave(provider, sent)
    if (tickets.length === 0) return

    const store = yield* Store
    yield* store.recordTickets(tickets).pipe(
      Effect.catchAll((error) =>
        emit("warn", "push_tickets_record_failed", {
          tickets: tickets.length,
          error_type: errorType(error),
          error_message: error.message
        })
      )
    )
  })

/** Marks a wave as being sent, sends it and records what happened, without interruption in between. */
const sendWave = (provider: PushProviderApi, wave: ReadonlyArray<ClaimedNotification>, context: DispatchContext) =>
  Effect.gen(function* () {
    const store = yield* Store

    yield* store.markSending(
      context.invocationId,
      wave.map((notification) => notification.notification_id)
    )
    const retries = yield* sendAll(provider, wave.map(requestOf), context)
    const sent = wave.map((notification, index) => ({
      dispatched: { notification, outcome: outcomeOf(retries[index] as RetryOutcome) },
      retry: retries[index]
    }))

    // Unrecorded sends would look unsent to the next run, so a failure here is worth one more try.
    yield* store
      .recordDispatch(
        context.invocationId,
        sent.map(({ dispatched, retry }) => resultOf(dispatched, retry))
      )
      .pipe(Effect.retry({ times: 1 }))
    yield* recordTickets(provider, sent)
    return sent.map(({ dispatched }) => dispatched)
  }).pipe(Effect.uninterruptible)

/**
 * Sends claimed notifications in waves and records every outcome: two statements a wave, plus one
 * for notifications nobody can be reached for. A shutdown waits for the wave under way only.
 */
export const dispatchAll = (
  claimed: ReadonlyArray<ClaimedNotification>,
  context: DispatchContext
): Effect.Effect<ReadonlyArray<Dispatched>, DatabaseError, Store | PushProvider> =>
  Effect.gen(function* () {
    const store = yield* Store
    const provider = yield* PushProvider

    // A token revoked between evaluation and claim, or only devices the provider cannot reach, leave
    // nothing to send to: the mentor is suppressed for having no usable token, which is not an error.
    const reachable = claimed.map((notification) => reachableBy(provider, notification))
    const sendable = reachable.filter((notification) => notification.tokens.length > 0)
    const unreachable: ReadonlyArray<Dispatched> = reachable
      .filter((notification) => notification.tokens.length === 0)
      .map((notification) => ({ notification, outcome: { _tag: "NoLiveToken" } }))

    yield* store.recordDispatch(
      context.invocationId,
      unreachable.map((dispatched) => resultOf(dispatched, undefined))
    )
    const waves = yield* Effect.forEach(Arr.chunksOf(sendable, waveSize), (wave) => sendWave(provider, wave, context))

    return [...waves.flat(), ...unreachable]
  })

/** Answers what a provider that keeps its own record says was delivered; nothing for one that cannot tell. */
export const confirmDelivered = (notificationIds: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const provider = yield* PushProvider
    if (provider.confirmDelivered === undefined || notificationIds.length === 0) return Option.none()
    return Option.some(yield* Effect.either(provider.confirmDelivered(notificationIds)))
  }).pipe(Effect.map(Option.flatMap(Either.getRight)))
