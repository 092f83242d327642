import { SqlClient } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { describeEachDatabase } from "./support/databases.ts"
import {
  addMentors,
  dueMentors,
  recordingProvider,
  resetDatabase,
  runOnce,
  runOptions,
  runRow
} from "./support/runs.ts"

interface ConfigRow {
  readonly organisation_id: string
  readonly scenario_type: string
  readonly enabled: boolean
  readonly cooldown_days: number | null
  readonly params: unknown
  readonly last_evaluated_count: number | null
  readonly last_evaluated_at: string | null
}

/** `scenario_evaluation_config` as `organisation:scenario` → row, timestamps as ISO text. */
const configRows = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<ConfigRow>`
    select organisation_id, scenario_type, enabled, cooldown_days, params, last_evaluated_count,
      to_char(last_evaluated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as last_evaluated_at
    from scenario_evaluation_config`
  return new Map(rows.map((row) => [`${row.organisation_id}:${row.scenario_type}`, row]))
})

const finishedAt = (invocationId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ at: string }>`
      select to_char(finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at
      from scheduler_runs where invocation_id = ${invocationId}`
    return rows[0]?.at
  })

describeEachDatabase("what a run covered, per organisation and scenario", (it) => {
  it.effect("writes last_evaluated_count and last_evaluated_at for each enabled scenario a run judged", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* resetDatabase
      const plain = yield* dueMentors(3, "Plain")
      const configured = yield* dueMentors(2, "Configured")
      const lost = yield* dueMentors(2, "Lost in time")
      yield* sql`insert into scenario_evaluation_config (organisation_id, scenario_type, enabled)
        values (${plain}, 'milestone', false)`
      yield* sql`insert into scenario_evaluation_config (organisation_id, scenario_type, params)
        values (${configured}, 'expiry', '{"warning_days": -1}'::jsonb)`
      yield* sql`update organisations set timezone = 'Mars/Olympus_Mons' where id = ${lost}`

      const first = runOptions()
      yield* runOnce(first, recordingProvider().layer)
      const afterFirst = yield* configRows
      const firstAt = yield* finishedAt(first.invocationId)

      // A missing row is created with the defaults left as they were; a disabled scenario is not touched; a
      // scenario whose parameters are unusable, and an organisation whose time zone is, were not judged.
      expect(afterFirst.get(`${plain}:inactivity`)).toMatchObject({
        enabled: true,
        cooldown_days: null,
        params: null,
        last_evaluated_count: 3,
        last_evaluated_at: firstAt
      })
      expect(afterFirst.get(`${plain}:expiry`)).toMatchObject({ last_evaluated_count: 3 })
      expect(afterFirst.get(`${plain}:milestone`)).toMatchObject({
        enabled: false,
        last_evaluated_count: null,
        last_evaluated_at: null
      })
      expect(afterFirst.get(`${configured}:inactivity`)).toMatchObject({ last_evaluated_count: 2 })
      expect(afterFirst.get(`${configured}:milestone`)).toMatchObject({ last_evaluated_count: 2 })
      expect(afterFirst.get(`${configured}:expiry`)).toMatchObject({ last_evaluated_count: null })
      expect([...afterFirst.keys()].filter((key) => key.startsWith(lost))).toEqual([])

      // A run limited to one scenario writes that scenario only; a dry run writes nothing.
      yield* addMentors(plain, 1)
      const second = runOptions({ scenarios: ["inactivity"] })
      yield* runOnce(second, recordingProvider().layer)
      yield* runOnce(runOptions({ dryRun: true }), recordingProvider().layer)
      const afterSecond = yield* configRows

      expect(afterSecond.get(`${plain}:inactivity`)).toMatchObject({
        last_evaluated_count: 4,
        last_evaluated_at: yield* finishedAt(second.invocationId)
      })
      expect(afterSecond.get(`${plain}:expiry`)).toMatchObject({ last_evaluated_count: 3, last_evaluated_at: firstAt })
      expect((yield* runRow(second.invocationId))?.outcome).toBe("completed")
    })
  )
})
