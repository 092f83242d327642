import type { SchedulerError } from "../domain/Errors.ts"
import { InvalidConfigError } from "../domain/Errors.ts"
import type { Candidate, EvaluationRow, SuppressionReason } from "../domain/Evaluation.ts"
import type { ScenarioType } from "../domain/Scenario.ts"
import type { InvalidRow } from "../services/Store.ts"

export interface MentorFailure {
  readonly error: SchedulerError
  readonly scenarioType: ScenarioType | null
}

/** Everything the run learnt about one mentor in this page. */
export interface MentorVerdict {
  readonly userId: string
  /** Known once the evaluation answered a row for the mentor; null when it never did. */
  organisationId: string | null
  readonly candidates: Array<Candidate>
  readonly suppressed: Array<SuppressionReason>
  readonly failures: Array<MentorFailure>
  dispatched: number
  failedNotifications: number
}

export type Verdicts = Map<string, MentorVerdict>

export const verdictFor = (verdicts: Verdicts, userId: string): MentorVerdict => {
  const existing = verdicts.get(userId)
  if (existing) return existing

  const created: MentorVerdict = {
    userId,
    organisationId: null,
    candidates: [],
    suppressed: [],
    failures: [],
    dispatched: 0,
    failedNotifications: 0
  }
  verdicts.set(userId, created)
  return created
}

const evaluationErrors = {
  invalid_timezone: "timezone",
  invalid_scenario_config: "scenario_params"
} as const

/** Folds the rows of `scheduler_evaluate` into one verdict per mentor. */
export const addEvaluationRows = (verdicts: Verdicts, rows: ReadonlyArray<EvaluationRow>): void => {
  for (const row of rows) {
    const verdict = verdictFor(verdicts, row.user_id)
    verdict.organisationId = row.organisation_id

    switch (row.status) {
      case "candidate":
        verdict.candidates.push(row)
        break
      case "suppressed":
        verdict.suppressed.push(row.reason)
        break
      case "none":
        break
      case "error":
        verdict.failures.push({
          scenarioType: row.scenario_type,
          error: new InvalidConfigError({
            reason: evaluationErrors[row.reason],
            message:
              row.reason === "invalid_timezone"
                ? "the organisation's time zone is not a known IANA zone"
                : "the organisation's scenario parameters cannot be read"
          })
        })
    }
  }
}

/** Rows that did not decode: each becomes its mentor's error; a row naming no mentor cannot be attributed. */
export const addInvalidRows = (verdicts: Verdicts, invalid: ReadonlyArray<InvalidRow>): ReadonlyArray<InvalidRow> => {
  const unattributed: Array<InvalidRow> = []

  for (const row of invalid) {
    if (row.userId === null) {
      unattributed.push(row)
    } else {
      verdictFor(verdicts, row.userId).failures.push({ error: row.error, scenarioType: null })
    }
  }

  return unattributed
}

export const addFailure = (verdicts: Verdicts, userId: string, error: SchedulerError): void => {
  verdictFor(verdicts, userId).failures.push({ error, scenarioType: null })
}
