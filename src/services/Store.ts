import { Context, type Effect } from "effect"
import type { BatchStats } from "../domain/BatchStats.ts"
import type { DatabaseError, InvalidRowError } from "../domain/Errors.ts"
import type {
  Candidate,
  ClaimedNotification,
  DispatchResult,
  EvaluationRow,
  ReclaimedNotification
} from "../domain/Evaluation.ts"
import type { ScenarioType } from "../domain/Scenario.ts"

/** A slice of the active mentors by user_id: after `after` (exclusive) up to `until` (inclusive); null is open. */
export interface MentorRange {
  readonly after: string | null
  readonly until: string | null
}

export type RunOutcome = "running" | "completed" | "partial" | "failed" | "skipped"

export interface FinishedRun {
  readonly invocationId: string
  readonly finishedAt: Date
  readonly outcome: RunOutcome
  readonly stats: BatchStats
  readonly resumeCursor: string | null
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
  /** Records the start of a run; answers where the previous run stopped, if it stopped early. */
  readonly openRun: (
    invocationId: string,
    startedAt: Date
  ) => Effect.Effect<{ resumeCursor: string | null }, StoreError>
  readonly finishRun: (run: FinishedRun) => Effect.Effect<void, DatabaseError>
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
  readonly markSending: (notificationIds: ReadonlyArray<string>) => Effect.Effect<void, DatabaseError>
  readonly recordDispatch: (results: ReadonlyArray<DispatchResult>) => Effect.Effect<void, DatabaseError>
  /** Takes over notifications other runs claimed and did not finish: deferred ones and those of crashed runs. */
  readonly reclaim: (invocationId: string, options: ReclaimOptions) => Effect.Effect<Reclaim, DatabaseError>
}

export type StoreError = DatabaseError | InvalidRowError

export class Store extends Context.Tag("scenario-scheduler/Store")<Store, StoreApi>() {}
