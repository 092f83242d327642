import { Effect, Ref } from "effect"
import { errorType, type SchedulerError } from "../domain/Errors.ts"
import type { ScenarioType } from "../domain/Scenario.ts"
import { emit } from "../services/Logger.ts"

/**
 * Per-mentor log lines, capped per run. Supabase keeps at most 100 log events per 10 s, so a run
 * where thousands of mentors fail the same way writes the first few lines in full and counts the
 * rest in the completion entry.
 */
export interface DetailLog {
  readonly mentorError: (
    userId: string,
    error: SchedulerError,
    scenarioType?: ScenarioType | null
  ) => Effect.Effect<void>
  readonly duplicateSkipped: (userId: string, scenarioType: ScenarioType) => Effect.Effect<void>
  /** How many lines were left out because the cap was reached. */
  readonly omitted: Effect.Effect<number>
}

export const makeDetailLog = (maxLines: number) =>
  Effect.gen(function* () {
    const written = yield* Ref.make(0)
    const omitted = yield* Ref.make(0)

    const capped = (line: Effect.Effect<void>) =>
      Ref.getAndUpdate(written, (count) => count + 1).pipe(
        Effect.flatMap((count) => (count < maxLines ? line : Ref.update(omitted, (left) => left + 1)))
      )

    const detailLog: DetailLog = {
      mentorError: (userId, error, scenarioType) =>
        capped(
          emit("error", "mentor_evaluation_error", {
            user_id: userId,
            error_type: errorType(error),
            error_message: error.message,
            ...(scenarioType ? { scenario_type: scenarioType } : {})
          })
        ),
      duplicateSkipped: (userId, scenarioType) =>
        capped(
          emit("warn", "notification_duplicate_skipped", {
            user_id: userId,
            scenario_type: scenarioType
          })
        ),
      omitted: Ref.get(omitted)
    }

    return detailLog
  })
