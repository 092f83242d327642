import { Cause, Clock, Effect, Exit, type Layer, Option, Ref } from "effect"
import {
  addMentorOutcomes,
  addPage,
  addRecovered,
  type BatchStats,
  emptyStats,
  type MentorOutcome,
  statsFields
} from "../domain/BatchStats.ts"
import { errorType, type PushError, type SchedulerError, UnexpectedError } from "../domain/Errors.ts"
import { emit } from "../services/Logger.ts"
import type { PushProvider } from "../services/PushProvider.ts"
import { type MentorRange, type OpenedRun, type RunOutcome, Store } from "../services/Store.ts"
import { addCoverage, type Coverage, emptyCoverage } from "./Coverage.ts"
import { type DetailLog, makeDetailLog } from "./DetailLog.ts"
import type { DispatchContext } from "./Dispatch.ts"
import { type PageContext, processPage } from "./Page.ts"
import { checkReceipts } from "./Receipts.ts"
import { recoverAbandoned } from "./Recovery.ts"
import type { RunOptions } from "./RunOptions.ts"
import type { MentorVerdict } from "./Verdicts.ts"

/** What a run ended with, for the adapter to turn into an exit code or an HTTP answer. */
export interface RunSummary {
  readonly invocationId: string
  readonly outcome: Exclude<RunOutcome, "running">
  readonly stats: BatchStats
  readonly remaining: number
  readonly resumeCursor: string | null
  readonly resumed: boolean
  readonly failure: SchedulerError | null
  readonly durationMs: number
}

interface RunState {
  readonly stats: BatchStats
  readonly outcome: Exclude<RunOutcome, "running">
  readonly remaining: number
  /** The last mentor whose page was finished: a partial run's next run starts after it. */
  readonly lastEvaluated: string | null
  readonly resumedFrom: string | null
  readonly opened: boolean
  readonly failure: SchedulerError | null
  /** The run that held the lock, when this one stood down. */
  readonly skippedBy: string | null
  readonly coverage: Coverage
}

const initialState: RunState = {
  stats: emptyStats(0),
  outcome: "failed",
  remaining: 0,
  lastEvaluated: null,
  resumedFrom: null,
  opened: false,
  failure: null,
  skippedBy: null,
  coverage: emptyCoverage
}

const everyone: MentorRange = { after: null, until: null }

/**
 * A run that resumes covers the mentors after the cursor first, then wraps around to those up to
 * it, so consecutive partial runs together reach every active mentor.
 */
const segmentsFrom = (resumeCursor: string | null): ReadonlyArray<MentorRange> =>
  resumeCursor === null
    ? [everyone]
    : [
        { after: resumeCursor, until: null },
        { after: null, until: resumeCursor }
      ]

const resumeCursorOf = (state: RunState): string | null =>
  state.outcome === "partial" ? (state.lastEvaluated ?? state.resumedFrom) : null

const outcomeOf = (verdict: MentorVerdict): MentorOutcome => ({
  dispatched: verdict.dispatched,
  suppressed: verdict.suppressed,
  failed: verdict.failedNotifications,
  errored: verdict.failures.length > 0
})

/**
 * Writes the per-mentor lines of one page and folds its verdicts into the totals, in one update for the
 * page: most mentors have no line to write, and a step per mentor would cost more than judging them.
 */
const recordVerdicts = (verdicts: ReadonlyArray<MentorVerdict>, state: Ref.Ref<RunState>, detailLog: DetailLog) =>
  Effect.gen(function* () {
    for (const verdict of verdicts) {
      for (const failure of verdict.failures) {
        yield* detailLog.mentorError(verdict.userId, failure.error, failure.scenarioType)
      }
    }

    yield* Ref.update(state, (current) => ({
      ...current,
      stats: addMentorOutcomes(current.stats, verdicts.map(outcomeOf))
    }))
  })

/**
 * The timeout guard: a new page starts only while the budget leaves room for one more page as long
 * as the longest so far, and never in the last twentieth of the budget. The first page always
 * starts, so that even a budget too small for anything makes progress.
 */
const makeGuard = (budgetMs: number, startedAt: number) =>
  Effect.gen(function* () {
    // The longest page so far, or none before the first.
    const longestPage = yield* Ref.make(Option.none<number>())

    const timePage = <A, E, R>(page: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const pageStart = yield* Clock.currentTimeMillis
        const result = yield* page
        const took = (yield* Clock.currentTimeMillis) - pageStart
        yield* Ref.update(longestPage, (longest) =>
          Option.some(
            Math.max(
              Option.getOrElse(longest, () => 0),
              took
            )
          )
        )
        return result
      })

    const hasRoomForPage = Effect.gen(function* () {
      const longest = yield* Ref.get(longestPage)
      const elapsed = (yield* Clock.currentTimeMillis) - startedAt
      return Option.match(longest, {
        onNone: () => true,
        onSome: (pageMs) => elapsed + Math.max(pageMs, budgetMs / 20) < budgetMs
      })
    })

    return { timePage, hasRoomForPage }
  })

const countRemaining = (segments: ReadonlyArray<MentorRange>, index: number, cursor: string | null) =>
  Effect.gen(function* () {
    const store = yield* Store
    const current = segments[index]
    const ranges = current ? [{ after: cursor, until: current.until }, ...segments.slice(index + 1)] : []
    const counts = yield* Effect.forEach(ranges, (range) => store.countActive(range))
    return counts.reduce((sum, count) => sum + count, 0)
  })

/**
 * Keeps the run lock: before a page, the heartbeat is renewed once a third of the lease has passed since the last
 * renewal, so a run of ordinary length never spends a statement on it. A run that finds it lost the lock (another
 * run took it for dead) says so once and carries on: the claim's unique keys still keep notifications single.
 */
const makeHeartbeat = (options: RunOptions) =>
  Effect.gen(function* () {
    const store = yield* Store
    const lastBeat = yield* Ref.make(yield* Clock.currentTimeMillis)
    const lost = yield* Ref.make(false)

    return Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      if (options.dryRun || (now - (yield* Ref.get(lastBeat))) * 3 < options.runLeaseMs) return

      const held = yield* store.renewRun(options.invocationId)
      yield* Ref.set(lastBeat, now)
      if (!held && !(yield* Ref.getAndSet(lost, true))) {
        yield* emit("warn", "scheduler_run_lock_lost", { run_lease_ms: options.runLeaseMs })
      }
    })
  })

/** Pages through the active mentors until they are all judged or the budget is spent. */
const walkMentors = (
  options: RunOptions,
  state: Ref.Ref<RunState>,
  now: Date,
  dispatch: DispatchContext,
  startedMs: number
) =>
  Effect.gen(function* () {
    const store = yield* Store
    // The budget counts from the start of the run: opening it and recovering took part of it.
    const guard = yield* makeGuard(options.budgetMs, startedMs)
    const heartbeat = yield* makeHeartbeat(options)
    const detailLog = yield* makeDetailLog(options.maxDetailLines)
    const context: PageContext = { ...options, now, detailLog, dispatch }
    const segments = segmentsFrom((yield* Ref.get(state)).resumedFrom)

    for (let index = 0; index < segments.length; index++) {
      const segment = segments[index] as MentorRange
      let cursor = segment.after

      while (true) {
        if (!(yield* guard.hasRoomForPage)) {
          // Out of time with nobody left is a completed run: its successor starts a new round, not a resumption.
          const remaining = yield* countRemaining(segments, index, cursor)
          const outcome = remaining > 0 ? ("partial" as const) : ("completed" as const)
          yield* Ref.update(state, (current) => ({ ...current, outcome, remaining }))
          return yield* detailLog.omitted
        }

        yield* heartbeat
        const page = yield* store.activePage({ after: cursor, until: segment.until }, options.pageSize)
        if (page.length === 0) break

        // Once the page has claimed notifications, it is finished and counted before a shutdown is
        // honoured: its claims are sent rather than left to wait a lease, and the totals say what was
        // sent. Sends stay bounded by the providers' timeouts and the run's send deadline. Judging the
        // page, before any claim, may still be interrupted.
        const last = page[page.length - 1] as string
        yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const verdicts = yield* guard.timePage(processPage(page, context, restore))
            yield* recordVerdicts(verdicts, state, detailLog)
            yield* Ref.update(state, (current) => ({
              ...current,
              stats: addPage(current.stats),
              lastEvaluated: last,
              coverage: addCoverage(current.coverage, verdicts, options.scenarios)
            }))
          })
        )
        cursor = last
        yield* failIfCredentialsRefused(dispatch)
      }
    }

    yield* Ref.update(state, (current) => ({ ...current, outcome: "completed" as const }))
    return yield* detailLog.omitted
  })

/** Credentials the provider refuses fail the whole run once, instead of every mentor after them. */
const failIfCredentialsRefused = (dispatch: DispatchContext) =>
  Ref.get(dispatch.credentialsRefused).pipe(
    Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (error) => Effect.fail(error) }))
  )

/** What sending needs for the whole run: no retry starts once the budget is spent. */
const makeDispatchContext = (options: RunOptions, startedMs: number) =>
  Ref.make(Option.none<PushError>()).pipe(
    Effect.map(
      (credentialsRefused): DispatchContext => ({
        invocationId: options.invocationId,
        concurrency: options.dispatchConcurrency,
        retryDeadlineMs: startedMs + options.budgetMs,
        // Another budget (at least 30 s) to finish what was begun: 55 s by default, inside 150 s of wall clock.
        sendDeadlineMs: startedMs + options.budgetMs + Math.max(options.budgetMs, 30_000),
        maxAttempts: options.maxSendAttempts,
        credentialsRefused
      })
    )
  )

const recover = (options: RunOptions, state: Ref.Ref<RunState>, dispatch: DispatchContext) =>
  Effect.gen(function* () {
    if (options.dryRun) return

    const recovered = yield* recoverAbandoned({
      invocationId: options.invocationId,
      claimLeaseMs: options.claimLeaseMs,
      limit: options.pageSize,
      dispatch
    })
    yield* Ref.update(state, (current) => ({ ...current, stats: addRecovered(current.stats, recovered) }))
    yield* failIfCredentialsRefused(dispatch)
  })

/** Before anything is sent, the tokens of devices gone since earlier sends are revoked, so nothing goes to them. */
const settleReceipts = (options: RunOptions) =>
  options.dryRun ? Effect.void : checkReceipts({ delayMs: options.receiptDelayMs })

const notOpened: OpenedRun = { resumeCursor: null, lockedBy: null, abandoned: [] }

/** Runs whose heartbeat had stopped (they crashed or were killed), which opening this run recorded as failed. */
const logAbandoned = (abandoned: ReadonlyArray<string>) =>
  abandoned.length === 0
    ? Effect.void
    : emit("warn", "abandoned_runs_closed", { count: abandoned.length, invocation_ids: abandoned.slice(0, 20) })

/**
 * Opens the run under the run lock. Answers false when the run must stand down because another run holds the lock
 * (overlap policy `skip`): it is then already recorded as skipped and does nothing more.
 */
const openRun = (options: RunOptions, state: Ref.Ref<RunState>, startedAt: Date) =>
  Effect.gen(function* () {
    const store = yield* Store

    // Counted as opened before the call returns: a call that times out or is interrupted may still have
    // committed, and the run row (and so the lock) must then be closed by finishRun, not left running.
    yield* Ref.update(state, (current) => ({ ...current, opened: !options.dryRun }))

    // A dry run writes nothing, not even its own run row, takes no lock and always starts from the first mentor.
    const opened = options.dryRun
      ? notOpened
      : yield* store.openRun(options.invocationId, startedAt, {
          overlap: options.overlap,
          leaseSeconds: Math.ceil(options.runLeaseMs / 1000)
        })
    yield* logAbandoned(opened.abandoned)

    if (opened.lockedBy !== null) {
      yield* Ref.update(state, (current) => ({
        ...current,
        opened: true,
        outcome: "skipped" as const,
        skippedBy: opened.lockedBy
      }))
      yield* emit("info", "scheduler_run_skipped", { holder_invocation_id: opened.lockedBy, overlap: "skip" })
      return false
    }
    yield* Ref.update(state, (current) => ({ ...current, opened: !options.dryRun, resumedFrom: opened.resumeCursor }))

    const totalActive = yield* store.countActive(everyone)
    yield* Ref.update(state, (current) => ({ ...current, stats: emptyStats(totalActive) }))

    if (opened.resumeCursor !== null) {
      yield* emit("info", "scheduler_run_resumed", { resume_cursor: opened.resumeCursor })
    }
    return true
  })

const reportRecordFailure = (record: string) => (error: SchedulerError) =>
  emit("error", "scheduler_run_record_failed", {
    record,
    error_type: errorType(error),
    error_message: error.message
  })

/**
 * Writes what the run covered per organisation and scenario, then the run's row. A failure to write either is
 * reported but does not change what the run did.
 */
const finishRun = (options: RunOptions, state: Ref.Ref<RunState>) =>
  Effect.gen(function* () {
    const store = yield* Store
    const finished = yield* Ref.get(state)
    if (!finished.opened) return
    const finishedAt = new Date(yield* Clock.currentTimeMillis)

    yield* store
      .recordCoverage([...finished.coverage.values()], finishedAt)
      .pipe(Effect.catchAll(reportRecordFailure("scenario_evaluation_config")))

    yield* store
      .finishRun({
        invocationId: options.invocationId,
        finishedAt,
        outcome: finished.outcome,
        stats: finished.stats,
        resumeCursor: resumeCursorOf(finished),
        resumedFrom: finished.resumedFrom,
        overlap: options.overlap,
        skippedBy: finished.skippedBy
      })
      .pipe(Effect.catchAll(reportRecordFailure("scheduler_runs")))
  })

/** A run interrupted from outside (shutdown, wall-clock limit) ends as partial at the last finished page. */
const markInterrupted = (state: Ref.Ref<RunState>) =>
  Ref.update(state, (current) =>
    current.outcome === "failed" && current.failure === null
      ? {
          ...current,
          outcome: "partial" as const,
          remaining: Math.max(0, current.stats.totalActive - current.stats.evaluated)
        }
      : current
  )

const failureOf = (cause: Cause.Cause<SchedulerError>): Option.Option<SchedulerError> =>
  Option.orElse(Cause.failureOption(cause), () =>
    Option.map(
      Cause.dieOption(cause),
      (defect) =>
        new UnexpectedError({
          message: defect instanceof Error ? `${defect.name}: ${defect.message}` : "unknown defect"
        })
    )
  )

const logFailure = (state: Ref.Ref<RunState>, failure: SchedulerError) =>
  Effect.gen(function* () {
    yield* Ref.update(state, (current) => ({ ...current, outcome: "failed" as const, failure }))
    const type = errorType(failure)
    yield* emit("error", "scheduler_run_failed", {
      error_type: type,
      error_message: failure.message,
      ...(type === "database_schema_mismatch" ? { hint: "apply supabase/migrations: scenario-scheduler migrate" } : {})
    })
  })

const completionLevel = { completed: "info", partial: "warn", failed: "error", skipped: "info" } as const

/** A run that completed but failed some mentors is worth a look: it says so at warn. */
const levelOf = (finished: RunState) =>
  finished.outcome === "completed" && finished.stats.errors > 0 ? "warn" : completionLevel[finished.outcome]

const logCompletion = (options: RunOptions, state: Ref.Ref<RunState>, startedMs: number, omitted: Ref.Ref<number>) =>
  Effect.gen(function* () {
    const finished = yield* Ref.get(state)
    const durationMs = (yield* Clock.currentTimeMillis) - startedMs
    const resumeCursor = resumeCursorOf(finished)

    if (finished.outcome === "partial") {
      yield* emit("warn", "scheduler_run_partial", {
        remaining: finished.remaining,
        resume_cursor: resumeCursor
      })
    }

    yield* emit(levelOf(finished), "scheduler_run_completed", {
      ...statsFields(finished.stats),
      duration_ms: durationMs,
      partial: finished.outcome === "partial",
      outcome: finished.outcome,
      remaining: finished.remaining,
      resume_cursor: resumeCursor,
      resumed: finished.resumedFrom !== null,
      dry_run: options.dryRun,
      log_lines_omitted: yield* Ref.get(omitted)
    })
  })

const summaryOf = (options: RunOptions, state: Ref.Ref<RunState>, startedMs: number) =>
  Effect.gen(function* () {
    const finished = yield* Ref.get(state)
    const summary: RunSummary = {
      invocationId: options.invocationId,
      outcome: finished.outcome,
      stats: finished.stats,
      remaining: finished.remaining,
      resumeCursor: resumeCursorOf(finished),
      resumed: finished.resumedFrom !== null,
      failure: finished.failure,
      durationMs: (yield* Clock.currentTimeMillis) - startedMs
    }
    return summary
  })

/**
 * One scheduler run. The services are built inside the run, so that a database that cannot be
 * reached still produces `scheduler_run_failed` and the completion entry. Whatever happens, also
 * when the run is interrupted, the completion entry is the last line, written exactly once.
 */
export const runScheduler = <R>(
  options: RunOptions,
  services: Layer.Layer<Store | PushProvider, SchedulerError, R>
): Effect.Effect<RunSummary, never, R> =>
  Effect.gen(function* () {
    const startedMs = yield* Clock.currentTimeMillis
    const now = options.now ?? new Date(startedMs)
    const state = yield* Ref.make(initialState)
    const omitted = yield* Ref.make(0)

    yield* emit("info", "scheduler_run_started", {
      scenarios: options.scenarios,
      budget_ms: options.budgetMs,
      page_size: options.pageSize,
      dry_run: options.dryRun,
      overlap: options.overlap,
      now: now.toISOString()
    })

    const run = Effect.gen(function* () {
      const dispatch = yield* makeDispatchContext(options, startedMs)

      if (!(yield* openRun(options, state, new Date(startedMs)))) return
      yield* settleReceipts(options)
      yield* recover(options, state, dispatch)
      yield* Ref.set(omitted, yield* walkMentors(options, state, now, dispatch, startedMs))
    }).pipe(
      Effect.onExit((exit) => (Exit.isInterrupted(exit) ? markInterrupted(state) : Effect.void)),
      Effect.tapErrorCause((cause) =>
        Option.match(failureOf(cause), { onNone: () => Effect.void, onSome: (failure) => logFailure(state, failure) })
      ),
      Effect.ensuring(finishRun(options, state)),
      Effect.provide(services),
      // Also when the shutdown comes while the services are still being built.
      Effect.onInterrupt(() => markInterrupted(state))
    )

    yield* run.pipe(
      Effect.catchAllCause((cause) =>
        // A service that could not even be built (the database is unreachable) fails here, before the run.
        Ref.get(state).pipe(
          Effect.flatMap((current) =>
            current.failure !== null
              ? Effect.void
              : Option.match(failureOf(cause), { onNone: () => Effect.void, onSome: (f) => logFailure(state, f) })
          )
        )
      ),
      Effect.ensuring(logCompletion(options, state, startedMs, omitted))
    )

    return yield* summaryOf(options, state, startedMs)
  }).pipe(Effect.annotateLogs({ component: "scenario-scheduler", invocation_id: options.invocationId }))
