import { Cause, Clock, Effect, Exit, type Layer, Option, Ref } from "effect"
import {
  addMentorOutcome,
  addPage,
  addRecovered,
  type BatchStats,
  emptyStats,
  statsFields
} from "../domain/BatchStats.ts"
import { errorType, type PushError, type SchedulerError, UnexpectedError } from "../domain/Errors.ts"
import { logEvent } from "../services/Logger.ts"
import type { PushProvider } from "../services/PushProvider.ts"
import { type MentorRange, type RunOutcome, Store } from "../services/Store.ts"
import { type DetailLog, makeDetailLog } from "./DetailLog.ts"
import type { DispatchContext } from "./Dispatch.ts"
import { type PageContext, processPage } from "./Page.ts"
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
}

const initialState: RunState = {
  stats: emptyStats(0),
  outcome: "failed",
  remaining: 0,
  lastEvaluated: null,
  resumedFrom: null,
  opened: false,
  failure: null
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

/** Folds one page's verdicts into the totals and writes the per-mentor lines. */
const recordVerdicts = (verdicts: ReadonlyArray<MentorVerdict>, state: Ref.Ref<RunState>, detailLog: DetailLog) =>
  Effect.forEach(
    verdicts,
    (verdict) =>
      Effect.gen(function* () {
        yield* Effect.forEach(
          verdict.failures,
          (failure) => detailLog.mentorError(verdict.userId, failure.error, failure.scenarioType),
          { discard: true }
        )

        yield* Ref.update(state, (current) => ({
          ...current,
          stats: addMentorOutcome(current.stats, {
            dispatched: verdict.dispatched,
            suppressed: verdict.suppressed,
            failed: verdict.failedNotifications,
            errored: verdict.failures.length > 0
          })
        }))
      }),
    { discard: true }
  )

/**
 * The timeout guard: a new page starts only while the budget leaves room for one more page as long
 * as the longest so far, and never in the last twentieth of the budget.
 */
const makeGuard = (budgetMs: number) =>
  Effect.gen(function* () {
    const startedAt = yield* Clock.currentTimeMillis
    const longestPage = yield* Ref.make(0)

    const timePage = <A, E, R>(page: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const pageStart = yield* Clock.currentTimeMillis
        const result = yield* page
        const took = (yield* Clock.currentTimeMillis) - pageStart
        yield* Ref.update(longestPage, (longest) => Math.max(longest, took))
        return result
      })

    const hasRoomForPage = Effect.gen(function* () {
      const elapsed = (yield* Clock.currentTimeMillis) - startedAt
      const reserve = Math.max(yield* Ref.get(longestPage), budgetMs / 20)
      return elapsed + reserve < budgetMs
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

/** Pages through the active mentors until they are all judged or the budget is spent. */
const walkMentors = (options: RunOptions, state: Ref.Ref<RunState>, now: Date, dispatch: DispatchContext) =>
  Effect.gen(function* () {
    const store = yield* Store
    const guard = yield* makeGuard(options.budgetMs)
    const detailLog = yield* makeDetailLog(options.maxDetailLines)
    const context: PageContext = { ...options, now, detailLog, dispatch }
    const segments = segmentsFrom((yield* Ref.get(state)).resumedFrom)

    for (let index = 0; index < segments.length; index++) {
      const segment = segments[index] as MentorRange
      let cursor = segment.after

      while (true) {
        if (!(yield* guard.hasRoomForPage)) {
          const remaining = yield* countRemaining(segments, index, cursor)
          yield* Ref.update(state, (current) => ({ ...current, outcome: "partial" as const, remaining }))
          return yield* detailLog.omitted
        }

        const page = yield* store.activePage({ after: cursor, until: segment.until }, options.pageSize)
        if (page.length === 0) break

        const verdicts = yield* guard.timePage(processPage(page, context))
        yield* recordVerdicts(verdicts, state, detailLog)
        yield* failIfCredentialsRefused(dispatch)

        cursor = page[page.length - 1] as string
        yield* Ref.update(state, (current) => ({ ...current, stats: addPage(current.stats), lastEvaluated: cursor }))
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

/**
 * What sending needs for the whole run. Retries only start in the first nine tenths of the budget,
 * leaving the rest for recording results and closing the run.
 */
const makeDispatchContext = (options: RunOptions, startedMs: number) =>
  Ref.make(Option.none<PushError>()).pipe(
    Effect.map(
      (credentialsRefused): DispatchContext => ({
        concurrency: options.dispatchConcurrency,
        retryDeadlineMs: startedMs + options.budgetMs * 0.9,
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

const openRun = (options: RunOptions, state: Ref.Ref<RunState>, startedAt: Date) =>
  Effect.gen(function* () {
    const store = yield* Store

    // A dry run writes nothing, not even its own run row, and always starts from the first mentor.
    const { resumeCursor } = options.dryRun
      ? { resumeCursor: null }
      : yield* store.openRun(options.invocationId, startedAt)
    yield* Ref.update(state, (current) => ({ ...current, opened: !options.dryRun, resumedFrom: resumeCursor }))

    const totalActive = yield* store.countActive(everyone)
    yield* Ref.update(state, (current) => ({ ...current, stats: emptyStats(totalActive) }))

    if (resumeCursor !== null) {
      yield* logEvent("info", "scheduler_run_resumed", { resume_cursor: resumeCursor })
    }
  })

/** Writes the run's row; a failure to do so is reported but does not change what the run did. */
const finishRun = (options: RunOptions, state: Ref.Ref<RunState>) =>
  Effect.gen(function* () {
    const store = yield* Store
    const finished = yield* Ref.get(state)
    if (!finished.opened) return

    yield* store
      .finishRun({
        invocationId: options.invocationId,
        finishedAt: new Date(yield* Clock.currentTimeMillis),
        outcome: finished.outcome,
        stats: finished.stats,
        resumeCursor: resumeCursorOf(finished)
      })
      .pipe(
        Effect.catchAll((error) =>
          logEvent("error", "scheduler_run_record_failed", {
            error_type: errorType(error),
            error_message: error.message
          })
        )
      )
  })

/** A run interrupted from outside (shutdown, wall-clock limit) ends as partial at the last finished page. */
const markInterrupted = (state: Ref.Ref<RunState>) =>
  Ref.update(state, (current) =>
    current.outcome === "failed" && current.failure === null
      ? { ...current, outcome: "partial" as const, remaining: current.stats.totalActive - current.stats.evaluated }
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
    yield* logEvent("error", "scheduler_run_failed", {
      error_type: errorType(failure),
      error_message: failure.message
    })
  })

const completionLevel = { completed: "info", partial: "warn", failed: "error", skipped: "info" } as const

const logCompletion = (options: RunOptions, state: Ref.Ref<RunState>, startedMs: number, omitted: Ref.Ref<number>) =>
  Effect.gen(function* () {
    const finished = yield* Ref.get(state)
    const durationMs = (yield* Clock.currentTimeMillis) - startedMs
    const resumeCursor = resumeCursorOf(finished)

    if (finished.outcome === "partial") {
      yield* logEvent("warn", "scheduler_run_partial", {
        remaining: finished.remaining,
        resume_cursor: resumeCursor
      })
    }

    yield* logEvent(completionLevel[finished.outcome], "scheduler_run_completed", {
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

    yield* logEvent("info", "scheduler_run_started", {
      scenarios: options.scenarios,
      budget_ms: options.budgetMs,
      page_size: options.pageSize,
      dry_run: options.dryRun,
      now: now.toISOString()
    })

    const run = Effect.gen(function* () {
      const dispatch = yield* makeDispatchContext(options, startedMs)

      yield* openRun(options, state, new Date(startedMs))
      yield* recover(options, state, dispatch)
      yield* Ref.set(omitted, yield* walkMentors(options, state, now, dispatch))
    }).pipe(
      Effect.onExit((exit) => (Exit.isInterrupted(exit) ? markInterrupted(state) : Effect.void)),
      Effect.tapErrorCause((cause) =>
        Option.match(failureOf(cause), { onNone: () => Effect.void, onSome: (failure) => logFailure(state, failure) })
      ),
      Effect.ensuring(finishRun(options, state)),
      Effect.provide(services)
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
