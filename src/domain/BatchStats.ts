import type { SuppressionReason } from "./Evaluation.ts"

/**
 * The running totals of one scheduler run.
 *
 * Mentors are counted once each: `evaluated` mentors were judged, and `errors` of them failed
 * somewhere (evaluation or dispatch). Notifications are counted once each: `dispatched` were
 * delivered to at least one device, `suppressed` were due but not sent (with the reason in
 * `suppressedBy`), `failed` were claimed but could not be delivered this run.
 */
export interface BatchStats {
  readonly totalActive: number
  readonly evaluated: number
  readonly dispatched: number
  readonly suppressed: number
  readonly suppressedBy: Readonly<Record<SuppressionReason, number>>
  readonly failed: number
  readonly errors: number
  readonly pagesProcessed: number
  /** Notifications taken over from earlier runs that did not finish them (their sends are in the counts above). */
  readonly recovered: number
}

export const emptyStats = (totalActive: number): BatchStats => ({
  totalActive,
  evaluated: 0,
  dispatched: 0,
  suppressed: 0,
  suppressedBy: { opted_out: 0, no_push_token: 0, cooldown: 0, duplicate: 0, dry_run: 0 },
  failed: 0,
  errors: 0,
  pagesProcessed: 0,
  recovered: 0
})

/** The outcome of one mentor within a page, as the program folds it into the totals. */
export interface MentorOutcome {
  readonly dispatched: number
  readonly suppressed: ReadonlyArray<SuppressionReason>
  readonly failed: number
  readonly errored: boolean
}

/** Adds the mentors of a page at once: one new totals object per page rather than one per mentor. */
export const addMentorOutcomes = (stats: BatchStats, outcomes: Iterable<MentorOutcome>): BatchStats => {
  const suppressedBy = { ...stats.suppressedBy }
  const totals = { evaluated: 0, dispatched: 0, suppressed: 0, failed: 0, errors: 0 }

  for (const outcome of outcomes) {
    for (const reason of outcome.suppressed) {
      suppressedBy[reason] += 1
    }
    totals.evaluated += 1
    totals.dispatched += outcome.dispatched
    totals.suppressed += outcome.suppressed.length
    totals.failed += outcome.failed
    totals.errors += outcome.errored ? 1 : 0
  }

  return {
    ...stats,
    evaluated: stats.evaluated + totals.evaluated,
    dispatched: stats.dispatched + totals.dispatched,
    suppressed: stats.suppressed + totals.suppressed,
    suppressedBy,
    failed: stats.failed + totals.failed,
    errors: stats.errors + totals.errors
  }
}

export const addRecovered = (
  stats: BatchStats,
  recovered: { readonly reclaimed: number; readonly dispatched: number; readonly failed: number }
): BatchStats => ({
  ...stats,
  recovered: stats.recovered + recovered.reclaimed,
  dispatched: stats.dispatched + recovered.dispatched,
  failed: stats.failed + recovered.failed
})

export const addPage = (stats: BatchStats): BatchStats => ({ ...stats, pagesProcessed: stats.pagesProcessed + 1 })

/** The `stats` object written to the log and the `scheduler_runs` row, in the log's snake_case. */
export const statsFields = (stats: BatchStats) => ({
  total_active: stats.totalActive,
  evaluated: stats.evaluated,
  dispatched: stats.dispatched,
  suppressed: stats.suppressed,
  suppressed_by: stats.suppressedBy,
  failed: stats.failed,
  errors: stats.errors,
  pages_processed: stats.pagesProcessed,
  recovered: stats.recovered
})
