import { Context, type Effect } from "effect"
import { type BatchStats, statsFields } from "../domain/BatchStats.ts"
import type { DatabaseError, InvalidRowError } from "../domain/Errors.ts"
import type {
  Candidate,
  ClaimedNotification,
  DispatchResult,
  EvaluationRow,
  ReclaimedNotification
} from "../domain/Evaluation.ts"
import type { PushTicket, SentTicket } from "../domain/Receipts.ts"
import type { ScenarioType } from "../domain/Scenario.ts"

/** A slice of the active mentors by user_id: after `after` (exclusive) up to `until` (inclusive); null is open. */
export interface MentorRange {
  readonly after: string | null
  readonly until: string | null
}

export type RunOutcome = "running" | "completed" | "partial" | "failed" | "skipped"

/**
 * What a run does when another run holds the run lock: `skip` stands down (recorded as skipped), `allow` runs
 * anyway and relies on the claim's unique keys alone to keep notifications single.
 */
export type OverlapPolicy = "skip" | "allow"

export interface RunLock {
  readonly overlap: OverlapPolicy
  /** A running run whose heartbeat is older than this has stopped: it no longer holds the lock. */
  readonly leaseSeconds: number
}

export interface OpenedRun {
  /** Where the previous run stopped, when it stopped early. */
  readonly resumeCursor: string | null
  /** Under `skip`, the run holding the lock: this run is already recorded as skipped and must do nothing. */
  readonly lockedBy: string | null
  /** Runs that stopped renewing their heartbeat (they crashed or were killed), closed as failed by this opening. */
  readonly abandoned: ReadonlyArray<string>
}

export interface FinishedRun {
  readonly invocationId: string
  readonly finishedAt: Date
  readonly outcome: RunOutcome
  readonly stats: BatchStats
  readonly resumeCursor: string | null
  /** The cursor this run resumed after, when it continued a partial run. */
  readonly resumedFrom: string | null
  readonly overlap: OverlapPolicy
  /** The run that held the lock, when this one was skipped. */
  readonly skippedBy: string | null
}

/** The `stats` column of a finished run's row: the totals in the log's snake_case, and how the run started. */
export const finishedRunStats = (run: FinishedRun) => ({
  ...statsFields(run.stats),
  resumed_from: run.resumedFrom,
  overlap: run.overlap,
  skipped_by: run.skippedBy
})

/** How many mentors of one organisation a run judged one scenario for. */
export interface ScenarioCoverage {
  readonly organisationId: string
  readonly scenarioType: ScenarioType
  readonly evaluated: number
}

/** A row that could not be decoded, kept with the mentor it belongs to (when even that could be read). */
export interface InvalidRow {
  readonly userId: string | null
  readonly error: InvalidRowError
}

export interface Evaluation {
  readonly rows: ReadonlyArray<EvaluationRow>
  readonly invalid: ReadonlyArray<InvalidRow>
}

export interface Claim {
  readonly claimed: ReadonlyArray<ClaimedNotification>
  readonly invalid: ReadonlyArray<InvalidRow>
  /** Candidates a store that claims in several calls could not claim, while the other calls succeeded. */
  readonly failed?: ReadonlyArray<{ readonly candidate: Candidate; readonly error: DatabaseError }>
}

export interface Reclaim {
  readonly reclaimed: ReadonlyArray<ReclaimedNotification>
  readonly invalid: ReadonlyArray<InvalidRow>
}

export interface ReclaimOptions {
  /** A pending notification claimed longer ago than this belongs to a run that is gone. */
  readonly leaseSeconds: number
  readonly limit: number
  /** Deferred notifications tried this often are given up (marked failed) instead. */
  readonly maxAttempts: number
}

/**
 * Everything the scheduler asks of the database. Each method is one statement whatever the number
 * of mentors it concerns, so a run costs a fixed number of round trips per page.
 */
export interface StoreApi {
  /**
   * Records the start of a run under the run lock; answers where the previous run stopped, if it stopped early,
   * or, when the lock is held and the policy is `skip`, which run holds it.
   */
  readonly openRun: (invocationId: string, startedAt: Date, lock: RunLock) => Effect.Effect<OpenedRun, StoreError>
  /** Renews the run's heartbeat; answers false when the run had lost the lock (another run closed it as expired). */
  readonly renewRun: (invocationId: string) => Effect.Effect<boolean, DatabaseError>
  readonly finishRun: (run: FinishedRun) => Effect.Effect<void, DatabaseError>
  /** Writes `last_evaluated_count` and `last_evaluated_at` of `scenario_evaluation_config`, in one statement. */
  readonly recordCoverage: (
    coverage: ReadonlyArray<ScenarioCoverage>,
    evaluatedAt: Date
  ) => Effect.Effect<void, DatabaseError>
  readonly countActive: (range: MentorRange) => Effect.Effect<number, StoreError>
  /** The next page of active mentors' ids in the range, in user_id order. */
  readonly activePage: (range: MentorRange, limit: number) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Judges every requested scenario for the given mentors as of `now`. */
  readonly evaluate: (
    userIds: ReadonlyArray<string>,
    now: Date,
    scenarios: ReadonlyArray<ScenarioType>
  ) => Effect.Effect<Evaluation, StoreError>
  /** Inserts the candidates this run may send; answers only those it inserted, with their live tokens. */
  readonly claim: (invocationId: string, candidates: ReadonlyArray<Candidate>) => Effect.Effect<Claim, StoreError>
  /** Notes that these notifications are about to be sent, so that a crash mid-send is recognisable. */
  readonly markSending: (
    invocationId: string,
    notificationIds: ReadonlyArray<string>
  ) => Effect.Effect<void, DatabaseError>
  /** Records outcomes of notifications this run holds; those another run has since taken over are left alone. */
  readonly recordDispatch: (
    invocationId: string,
    results: ReadonlyArray<DispatchResult>
  ) => Effect.Effect<void, DatabaseError>
  /** Takes over notifications other runs claimed and did not finish: deferred ones and those of crashed runs. */
  readonly reclaim: (invocationId: string, options: ReclaimOptions) => Effect.Effect<Reclaim, DatabaseError>
  /** Keeps the tickets of accepted messages until a later run asks for their receipts; known tickets are skipped. */
  readonly recordTickets: (tickets: ReadonlyArray<SentTicket>) => Effect.Effect<void, DatabaseError>
  /** Tickets stored at least `olderThanSeconds` ago and still within the day receipts are kept, oldest first. */
  readonly dueTickets: (olderThanSeconds: number, limit: number) => Effect.Effect<ReadonlyArray<PushTicket>, StoreError>
  /**
   * Forgets the tickets whose receipts were read and revokes the tokens of those tickets that the receipts said are
   * gone. Tickets older than the day receipts are kept are forgotten as well.
   */
  readonly settleTickets: (
    ticketIds: ReadonlyArray<string>,
    revokeTokenIds: ReadonlyArray<string>
  ) => Effect.Effect<void, DatabaseError>
}

export type StoreError = DatabaseError | InvalidRowError

export class Store extends Context.Tag("scenario-scheduler/Store")<Store, StoreApi>() {}
