import type { ScenarioType } from "../domain/Scenario.ts"
import type { ScenarioCoverage } from "../services/Store.ts"
import type { MentorVerdict } from "./Verdicts.ts"

/**
 * How many mentors of each organisation a run judged each scenario for, for
 * `scenario_evaluation_config.last_evaluated_count`. Keyed by organisation and scenario.
 */
export type Coverage = ReadonlyMap<string, ScenarioCoverage>

export const emptyCoverage: Coverage = new Map()

const failedWith = (verdict: MentorVerdict, reason: "timezone" | "scenario_params", scenario?: ScenarioType) =>
  verdict.failures.some(
    (failure) =>
      failure.error._tag === "InvalidConfigError" &&
      failure.error.reason === reason &&
      (scenario === undefined || failure.scenarioType === scenario)
  )

/**
 * The scenarios a mentor was judged for: none when their organisation's time zone is unusable, and
 * not those whose parameters are. Whether a scenario is enabled for the organisation is left to the
 * database, which writes only enabled scenarios.
 */
const judgedScenarios = (verdict: MentorVerdict, scenarios: ReadonlyArray<ScenarioType>) =>
  failedWith(verdict, "timezone")
    ? []
    : scenarios.filter((scenario) => !failedWith(verdict, "scenario_params", scenario))

/** Adds one page's verdicts. A mentor the evaluation answered nothing for was not judged and is not counted. */
export const addCoverage = (
  coverage: Coverage,
  verdicts: ReadonlyArray<MentorVerdict>,
  scenarios: ReadonlyArray<ScenarioType>
): Coverage => {
  const next = new Map(coverage)

  for (const verdict of verdicts) {
    const organisationId = verdict.organisationId
    if (organisationId === null) continue

    for (const scenarioType of judgedScenarios(verdict, scenarios)) {
      const key = `${organisationId}:${scenarioType}`
      const evaluated = (next.get(key)?.evaluated ?? 0) + 1
      next.set(key, { organisationId, scenarioType, evaluated })
    }
  }

  return next
}
