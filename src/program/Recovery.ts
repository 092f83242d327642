import { Clock, Effect, Option } from "effect"
import { type DatabaseError, errorType, PushError } from "../domain/Errors.ts"
import type { ReclaimedNotification } from "../domain/Evaluation.ts"
import { emit } from "../services/Logger.ts"
import type { PushProvider } from "../services/PushProvider.ts"
import { Store } from "../services/Store.ts"
import { confirmDelivered, type DispatchContext, type Dispatched, dispatchAll } from "./Dispatch.ts"

export interface RecoveryOptions {
  readonly invocationId: string
  readonly claimLeaseMs: number
  readonly limit: number
  readonly dispatch: DispatchContext
}

/** What recovering other runs' unfinished notifications did, for the run's totals. */
export interface Recovered {
  readonly reclaimed: number
  readonly dispatched: number
  readonly failed: number
}

const nothingRecovered: Recovered = { reclaimed: 0, dispatched: 0, failed: 0 }

const outcomeUnknown = new PushError({
  provider: "scheduler",
  reason: "unknown",
  message: "an earlier run stopped while sending this notification; the provider cannot say whether it arrived"
})

/**
 * Splits the notifications whose earlier send may have happened: those the provider confirms are
 * recorded as dispatched, those it confirms it never got are sent again, and when the provider cannot
 * tell they are given up rather than risk notifying a mentor twice.
 */
const settleUnknown = (invocationId: string, unknown: ReadonlyArray<ReclaimedNotification>) =>
  Effect.gen(function* () {
    const store = yield* Store
    const confirmed = yield* confirmDelivered(unknown.map((notification) => notification.notification_id))

    const delivered = Option.match(confirmed, {
      onNone: () => new Set<string>(),
      onSome: (ids) => ids
    })
    const resend = Option.isSome(confirmed) ? unknown.filter((n) => !delivered.has(n.notification_id)) : []
    const givenUp = Option.isNone(confirmed) ? unknown : []

    yield* store.recordDispatch(invocationId, [
      ...[...delivered].map((id) => ({
        notification_id: id,
        status: "dispatched" as const,
        error_type: null,
        revoked_token_ids: []
      })),
      ...givenUp.map((notification) => ({
        notification_id: notification.notification_id,
        status: "failed" as const,
        error_type: errorType(outcomeUnknown),
        revoked_token_ids: []
      }))
    ])

    return { confirmed: delivered.size, resend, givenUp: givenUp.length }
  })

const countOutcomes = (dispatched: ReadonlyArray<Dispatched>) => ({
  dispatched: dispatched.filter((d) => d.outcome._tag === "Dispatched").length,
  failed: dispatched.filter((d) => d.outcome._tag !== "Dispatched").length
})

/** Takes over one batch of what earlier runs left and sends it; answers how many were taken with the totals. */
const recoverBatch = (options: RecoveryOptions) =>
  Effect.gen(function* () {
    const store = yield* Store
    const { reclaimed, invalid } = yield* store.reclaim(options.invocationId, {
      leaseSeconds: Math.ceil(options.claimLeaseMs / 1000),
      limit: options.limit,
      maxAttempts: options.dispatch.maxAttempts
    })
    if (invalid.length > 0) yield* emit("warn", "unattributed_invalid_rows", { count: invalid.length })
    if (reclaimed.length === 0) return { taken: invalid.length, recovered: nothingRecovered }

    const unknown = reclaimed.filter((notification) => notification.outcome_unknown)
    const settled = yield* settleUnknown(options.invocationId, unknown)
    const toSend = [...reclaimed.filter((notification) => !notification.outcome_unknown), ...settled.resend]
    const counts = countOutcomes(yield* dispatchAll(toSend, options.dispatch))

    yield* emit("info", "abandoned_notifications_recovered", {
      reclaimed: reclaimed.length,
      sent: counts.dispatched,
      confirmed_delivered: settled.confirmed,
      given_up_outcome_unknown: settled.givenUp,
      not_delivered: counts.failed
    })

    const recovered: Recovered = {
      reclaimed: reclaimed.length,
      dispatched: counts.dispatched + settled.confirmed,
      failed: counts.failed + settled.givenUp
    }
    return { taken: reclaimed.length + invalid.length, recovered }
  })

const addUp = (a: Recovered, b: Recovered): Recovered => ({
  reclaimed: a.reclaimed + b.reclaimed,
  dispatched: a.dispatched + b.dispatched,
  failed: a.failed + b.failed
})

/**
 * Before judging anyone, a run finishes what earlier runs left: notifications deferred for a
 * transient provider failure, and notifications of runs that crashed after claiming them. Each is
 * taken over in the database first, so two runs never send the same one. It goes on batch after
 * batch while batches come back full and the run's send deadline has not passed, because a crashed
 * run can leave more than one batch behind (a page claims up to one notification per scenario and mentor).
 */
export const recoverAbandoned = (
  options: RecoveryOptions
): Effect.Effect<Recovered, DatabaseError, Store | PushProvider> =>
  Effect.gen(function* () {
    let total = nothingRecovered

    while (true) {
      const batch = yield* recoverBatch(options)
      total = addUp(total, batch.recovered)

      const beforeDeadline = (yield* Clock.currentTimeMillis) < options.dispatch.retryDeadlineMs
      if (batch.taken < options.limit || !beforeDeadline) return total
    }
  })
