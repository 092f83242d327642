import { allScenarioTypes, type ScenarioType } from "../domain/Scenario.ts"
import type { OverlapPolicy } from "../services/Store.ts"

/** What one run is asked to do. Adapters build it from flags, request bodies and configuration. */
export interface RunOptions {
  readonly invocationId: string
  /** The moment the scenarios are judged at; the run's clock when absent. */
  readonly now?: Date | undefined
  readonly scenarios: ReadonlyArray<ScenarioType>
  /** Wall-clock time the run may take before it stops starting new pages. */
  readonly budgetMs: number
  readonly pageSize: number
  /** Judge and count, but claim and send nothing and write nothing. */
  readonly dryRun: boolean
  /** How many notifications are sent at once. */
  readonly dispatchConcurrency: number
  /** Per-mentor log lines (errors, duplicates) written per run before they are only counted. */
  readonly maxDetailLines: number
  /** How long a claimed notification stays with its run; after that a crashed run's claims are taken over. */
  readonly claimLeaseMs: number
  /** Sends per notification, across runs, before a transient failure is given up. */
  readonly maxSendAttempts: number
  /** What to do while another run holds the run lock: stand down (`skip`) or run anyway (`allow`). */
  readonly overlap: OverlapPolicy
  /**
   * How long another run's heartbeat keeps the run lock. A running run renews its own every third of this, so
   * a run that crashed loses the lock at most this long after its last page.
   */
  readonly runLeaseMs: number
  /**
   * How old a push ticket must be before a run asks for its receipt. Expo advises waiting about fifteen minutes:
   * asked earlier, most receipts are not there yet and the question is only repeated.
   */
  readonly receiptDelayMs: number
}

export const defaultRunOptions = {
  scenarios: allScenarioTypes,
  budgetMs: 25_000,
  // Measured with `npm run bench` (docs/PERFORMANCE.md): against 500, a third fewer statements and 20–40 % less CPU per
  // mentor. It is also the most rows Supabase's Data API answers by default, so a page of ids is one call there.
  pageSize: 1000,
  dryRun: false,
  dispatchConcurrency: 16,
  maxDetailLines: 50,
  // Longer than any run may last (an Edge Function gets at most 400 s of wall clock).
  claimLeaseMs: 15 * 60_000,
  maxSendAttempts: 4,
  overlap: "skip",
  // Above the longest wall clock an Edge Function gets (400 s), so that a live run is never taken for a dead one.
  runLeaseMs: 10 * 60_000,
  receiptDelayMs: 15 * 60_000
} as const satisfies Omit<RunOptions, "invocationId">
