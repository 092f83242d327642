import { Effect } from "effect"
import type { DatabaseError, SchedulerError } from "../domain/Errors.ts"
import type { Candidate, ClaimedNotification } from "../domain/Evaluation.ts"
import type { ScenarioType } from "../domain/Scenario.ts"
import { emit } from "../services/Logger.ts"
import type { PushProvider } from "../services/PushProvider.ts"
import { Store, type StoreError } from "../services/Store.ts"
import type { DetailLog } from "./DetailLog.ts"
import { type DispatchContext, type Dispatched, dispatchAll, isRunLevelFailure } from "./Dispatch.ts"
import {
  addEvaluationRows,
  addFailure,
  addInvalidRows,
  type MentorVerdict,
  type Verdicts,
  verdictFor
} from "./Verdicts.ts"

export interface PageContext {
  readonly invocationId: string
  readonly now: Date
  readonly scenarios: ReadonlyArray<ScenarioType>
  readonly dryRun: boolean
  readonly dispatch: DispatchContext
  readonly detailLog: DetailLog
}

/**
 * A lost connection or a database without the scheduler's schema ends the run: retrying mentor by
 * mentor would only turn one clear failure into thousands of lines. Only a failed statement is
 * worth narrowing down.
 */
const isFatal = (error: StoreError): error is DatabaseError =>
  error._tag === "DatabaseError" && error.reason !== "query"

/**
 * Runs a bulk step; when the statement fails as a whole, runs each half again, and so on down to
 * single mentors, so that only the mentors that really cause the failure are reported. A page with
 * one bad row costs about twice log2(page size) extra statements, not one per mentor.
 */
const withFallbackByHalves = <K>(
  keys: ReadonlyArray<K>,
  step: (keys: ReadonlyArray<K>) => Effect.Effect<void, StoreError>,
  onFailure: (key: K, error: SchedulerError) => void
): Effect.Effect<void, DatabaseError> =>
  step(keys).pipe(
    Effect.catchAll((error) => {
      if (isFatal(error)) return Effect.fail(error)

      if (keys.length <= 1) {
        return Effect.sync(() => {
          for (const key of keys) onFailure(key, error)
        })
      }

      const middle = Math.ceil(keys.length / 2)
      return Effect.zipRight(
        withFallbackByHalves(keys.slice(0, middle), step, onFailure),
        withFallbackByHalves(keys.slice(middle), step, onFailure)
      )
    })
  )

const evaluate = (userIds: ReadonlyArray<string>, context: PageContext, verdicts: Verdicts) =>
  Effect.gen(function* () {
    const store = yield* Store

    yield* withFallbackByHalves(
      userIds,
      (ids) =>
        store.evaluate(ids, context.now, context.scenarios).pipe(
          Effect.map((evaluation) => {
            addEvaluationRows(verdicts, evaluation.rows)
            return addInvalidRows(verdicts, evaluation.invalid)
          }),
          Effect.flatMap((unattributed) => reportUnattributed(unattributed.length))
        ),
      (userId, error) => addFailure(verdicts, userId, error)
    )
  })

const claim = (candidates: ReadonlyArray<Candidate>, context: PageContext, verdicts: Verdicts) =>
  Effect.gen(function* () {
    const store = yield* Store
    const claimed: Array<ClaimedNotification> = []
    const failedKeys = new Set<string>()

    yield* withFallbackByHalves(
      candidates,
      (batch) =>
        store.claim(context.invocationId, batch).pipe(
          Effect.map((claim) => {
            claimed.push(...claim.claimed)

            for (const { candidate, error } of claim.failed ?? []) {
              failedKeys.add(candidate.idempotency_key)
              addFailure(verdicts, candidate.user_id, error)
            }

            // An inserted row this run cannot read is not a duplicate: it stays pending for recovery.
            const unreadable = new Set(claim.invalid.map((row) => row.userId))
            for (const candidate of batch) {
              if (unreadable.has(candidate.user_id)) failedKeys.add(candidate.idempotency_key)
            }
            return addInvalidRows(verdicts, claim.invalid)
          }),
          Effect.flatMap((unattributed) => reportUnattributed(unattributed.length))
        ),
      (candidate, error) => {
        failedKeys.add(candidate.idempotency_key)
        addFailure(verdicts, candidate.user_id, error)
      }
    )

    return { claimed, failedKeys }
  })

const reportUnattributed = (count: number) =>
  count === 0 ? Effect.void : emit("warn", "unattributed_invalid_rows", { count })

/**
 * Candidates that were not inserted lost the race to another run or were already claimed: not sent. Each inserted
 * row stands for one candidate, so when a batch holds the same key twice the second is a duplicate too.
 */
const markDuplicates = (
  candidates: ReadonlyArray<Candidate>,
  { claimed, failedKeys }: { claimed: ReadonlyArray<ClaimedNotification>; failedKeys: ReadonlySet<string> },
  verdicts: Verdicts,
  detailLog: DetailLog
) => {
  const unmatched = new Set(claimed.map((notification) => notification.idempotency_key))
  const duplicates = candidates.filter(
    (candidate) => !unmatched.delete(candidate.idempotency_key) && !failedKeys.has(candidate.idempotency_key)
  )

  return Effect.forEach(
    duplicates,
    (candidate) => {
      verdicts.get(candidate.user_id)?.suppressed.push("duplicate")
      return detailLog.duplicateSkipped(candidate.user_id, candidate.scenario_type)
    },
    { discard: true }
  )
}

/** A refused credential is the run's matter, reported once, not a failure of each mentor. */
const addDispatchOutcomes = (verdicts: Verdicts, dispatched: ReadonlyArray<Dispatched>): void => {
  for (const { notification, outcome } of dispatched) {
    const verdict = verdictFor(verdicts, notification.user_id)

    switch (outcome._tag) {
      case "Dispatched":
        verdict.dispatched += 1
        break
      case "NoLiveToken":
        verdict.suppressed.push("no_push_token")
        break
      case "Deferred":
      case "Failed":
        verdict.failedNotifications += 1
        if (!isRunLevelFailure(outcome.error)) {
          verdict.failures.push({ error: outcome.error, scenarioType: notification.scenario_type })
        }
    }
  }
}

/**
 * One page of mentors: judged in one statement, claimed in one statement, sent with bounded
 * concurrency and recorded in one statement. Answers one verdict per mentor that was judged.
 */
/** Lets a caller that runs the page uninterruptibly allow interruption where nothing is claimed yet. */
export type Interruptible = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

export const processPage = (
  userIds: ReadonlyArray<string>,
  context: PageContext,
  whileEvaluating: Interruptible = (effect) => effect
): Effect.Effect<ReadonlyArray<MentorVerdict>, DatabaseError, Store | PushProvider> =>
  Effect.gen(function* () {
    const verdicts: Verdicts = new Map()

    yield* whileEvaluating(evaluate(userIds, context, verdicts))
    const candidates = [...verdicts.values()].flatMap((verdict) => verdict.candidates)

    if (context.dryRun) {
      for (const candidate of candidates) verdicts.get(candidate.user_id)?.suppressed.push("dry_run")
      return [...verdicts.values()]
    }

    const claimResult = yield* claim(candidates, context, verdicts)
    yield* markDuplicates(candidates, claimResult, verdicts, context.detailLog)
    const dispatched = yield* dispatchAll(claimResult.claimed, context.dispatch)
    addDispatchOutcomes(verdicts, dispatched)

    return [...verdicts.values()]
  })
