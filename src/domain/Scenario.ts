import { Schema } from "effect"

/** The engagement scenarios the scheduler knows how to evaluate. */
export const ScenarioType = Schema.Literal("inactivity", "milestone", "expiry")
export type ScenarioType = typeof ScenarioType.Type

export const allScenarioTypes: ReadonlyArray<ScenarioType> = ScenarioType.literals

/**
 * Defaults used when an organisation has no `scenario_evaluation_config` row for a scenario.
 * The SQL evaluation applies the same values; they are repeated here so that the rules can be
 * documented, tested and rendered without a database.
 */
export const scenarioDefaults = {
  inactivity: { cooldownDays: 7, params: { inactivity_days: 14 } },
  milestone: { cooldownDays: 1, params: { thresholds: [10, 25, 50, 100, 250] } },
  expiry: { cooldownDays: 7, params: { warning_days: 30 } }
} as const satisfies Record<ScenarioType, { cooldownDays: number; params: object }>

/** Parses `inactivity,milestone` as given to `--scenarios` or in a request body. */
export const ScenarioList = Schema.NonEmptyArray(ScenarioType)
