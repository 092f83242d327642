import { Effect } from "effect"
import { type DatabaseError, errorType, PushError } from "../domain/Errors.ts"
import type { ClaimedNotification, DispatchResult } from "../domain/Evaluation.ts"
import { renderMessage } from "../domain/Message.ts"
import { PushProvider, type TokenDelivery } from "../services/PushProvider.ts"
import { Store } from "../services/Store.ts"
import { type Verdicts, verdictFor } from "./Verdicts.ts"

/** A delivery to at least one device counts as sent; devices the provider says are gone are revoked. */
const resultOf = (notification: ClaimedNotification, deliveries: ReadonlyArray<TokenDelivery>) => {
  const revoked = deliveries.filter((delivery) => delivery.outcome === "unregistered").map((d) => d.tokenId)
  const delivered = deliveries.some((delivery) => delivery.outcome === "delivered")
  const firstFailure = deliveries.find((delivery) => delivery.outcome === "failed")

  if (delivered) {
    return { result: dispatchResult(notification, "dispatched", null, revoked), error: null }
  }

  const error =
    firstFailure?.error ??
    new PushError({
      provider: "scheduler",
      reason: "unregistered_token",
      message: "every device of the mentor is unregistered"
    })
  return { result: dispatchResult(notification, "failed", error, revoked), error }
}

const dispatchResult = (
  notification: ClaimedNotification,
  status: DispatchResult["status"],
  error: PushError | null,
  revoked: ReadonlyArray<string>
): DispatchResult => ({
  notification_id: notification.notification_id,
  status,
  error_type: error ? errorType(error) : null,
  revoked_token_ids: revoked
})

const dispatchOne = (notification: ClaimedNotification, verdicts: Verdicts) =>
  Effect.gen(function* () {
    const provider = yield* PushProvider
    const verdict = verdictFor(verdicts, notification.user_id)

    // The token was revoked between evaluation and claim: nothing to send to, which is not an error.
    if (notification.tokens.length === 0) {
      verdict.suppressed.push("no_push_token")
      return dispatchResult(notification, "failed", null, [])
    }

    const request = {
      notificationId: notification.notification_id,
      userId: notification.user_id,
      scenarioType: notification.scenario_type,
      content: renderMessage(notification.scenario_type, notification.notification_id, notification.payload),
      tokens: notification.tokens
    }

    const { result, error } = yield* provider.send(request).pipe(
      Effect.map((deliveries) => resultOf(notification, deliveries)),
      Effect.catchAll((error) => Effect.succeed({ result: dispatchResult(notification, "failed", error, []), error }))
    )

    if (error) {
      verdict.failedNotifications += 1
      verdict.failures.push({ error, scenarioType: notification.scenario_type })
    } else {
      verdict.dispatched += 1
    }

    return result
  })

/** Sends the page's claimed notifications with bounded concurrency, then records every outcome in one statement. */
export const dispatchAll = (
  claimed: ReadonlyArray<ClaimedNotification>,
  verdicts: Verdicts,
  concurrency: number
): Effect.Effect<void, DatabaseError, Store | PushProvider> =>
  Effect.gen(function* () {
    const store = yield* Store
    const results = yield* Effect.forEach(claimed, (notification) => dispatchOne(notification, verdicts), {
      concurrency
    })

    // Unrecorded sends would look unsent to the next run, so a failure here is worth one more try.
    yield* store.recordDispatch(results).pipe(Effect.retry({ times: 1 }))
  })
