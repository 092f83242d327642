/**
 * The approach the scheduler replaces, as a reference: every active mentor is judged on their own,
 * with one query per mentor and scenario, and every notification is claimed, looked up and recorded
 * with statements of its own. It applies the same rules as `scheduler_evaluate` and the claim (the
 * rules are written out here in TypeScript), so on the same data it sends the same notifications;
 * only the number of round trips differs.
 *
 * It handles what the benchmark's population holds. Invalid zones or parameters count as errors
 * without the scheduler's detail, and there is no budget, resume or retry: it is a yardstick, not
 * a second scheduler.
 */
import { SqlClient, type SqlError, type Statement } from "@effect/sql"
import { Effect, Redacted } from "effect"
import type { PushError } from "../src/domain/Errors.ts"
import type { Payload, PushTokenRow, SuppressionReason } from "../src/domain/Evaluation.ts"
import { renderMessage } from "../src/domain/Message.ts"
import { type ScenarioType, scenarioDefaults } from "../src/domain/Scenario.ts"
import { PushProvider } from "../src/services/PushProvider.ts"

export interface NaiveOptions {
  readonly invocationId: string
  readonly now: Date
  readonly scenarios: ReadonlyArray<ScenarioType>
}

export interface NaiveResult {
  readonly evaluated: number
  readonly notifications: number
  readonly dispatched: number
  readonly suppressedBy: Record<Exclude<SuppressionReason, "dry_run">, number>
  readonly errors: number
}

/** What one mentor's query answers for one scenario; the rules below decide with it. */
interface Facts {
  readonly organisation_id: string
  readonly evaluation_date: string
  readonly notifications_enabled: boolean
  readonly enabled: boolean
  readonly cooldown_days: number | null
  readonly params: Record<string, unknown> | null
  readonly has_live_token: boolean
  /** The mentor's notifications of this scenario: `evaluation_date` and `cooldown_window_start`. */
  readonly notified: ReadonlyArray<readonly [string, string]>
  // Each scenario's query reads only its own facts.
  readonly created_on?: string
  readonly last_activity_date?: string | null
  readonly activity_count?: number
  readonly highest_threshold?: number | null
  readonly certification_expires_at?: string | null
}

const DAY_MS = 86_400_000

const dayNumber = (date: string): number => Date.parse(`${date}T00:00:00Z`) / DAY_MS

const dateOf = (day: number): string => new Date(day * DAY_MS).toISOString().slice(0, 10)

/** Days and counts past ten years are mistakes, as the SQL functions have it. */
const MAX_DAYS = 3650

type Params = Record<string, unknown> | null

/** A whole number in [min, max] from params; a missing key means the default, anything else is invalid. */
const integerParam = (params: Params, key: string, fallback: number, min: number, max = MAX_DAYS) => {
  const value = params?.[key]
  if (value === undefined || value === null) return fallback
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max ? value : undefined
}

const thresholdsParam = (params: Params): ReadonlyArray<number> | undefined => {
  const value = params?.thresholds
  if (value === undefined || value === null) return scenarioDefaults.milestone.params.thresholds
  const valid = (t: unknown) => typeof t === "number" && Number.isInteger(t) && t >= 1 && t <= 2_147_483_647
  return Array.isArray(value) && value.every(valid) ? (value as ReadonlyArray<number>) : undefined
}

type Judgement =
  | { readonly _tag: "Invalid" }
  | { readonly _tag: "NotDue" }
  | { readonly _tag: "Due"; readonly payload: Payload }

const invalid: Judgement = { _tag: "Invalid" }
const notDue: Judgement = { _tag: "NotDue" }
const due = (payload: Payload): Judgement => ({ _tag: "Due", payload })

const readable = (params: Params) => params === null || (typeof params === "object" && !Array.isArray(params))

/** Whether the scenario is due for the mentor, with its payload; invalid when the configuration is unusable. */
const judge = (scenario: ScenarioType, facts: Facts): Judgement => {
  const cooldown = facts.cooldown_days ?? defaultCooldown(scenario)
  if (!readable(facts.params) || cooldown < 1 || cooldown > MAX_DAYS) return invalid
  const today = dayNumber(facts.evaluation_date)

  switch (scenario) {
    case "inactivity": {
      const days = integerParam(facts.params, "inactivity_days", 14, 1)
      if (days === undefined) return invalid
      const last = facts.last_activity_date ?? null
      const inactive = today - dayNumber(last ?? facts.created_on ?? facts.evaluation_date)
      return inactive >= days ? due({ last_activity_date: last, days_inactive: inactive }) : notDue
    }
    case "milestone": {
      const thresholds = thresholdsParam(facts.params)
      if (thresholds === undefined) return invalid
      const count = facts.activity_count ?? 0
      const reached = thresholds.filter((t) => t <= count && t > (facts.highest_threshold ?? 0))
      return reached.length === 0 ? notDue : due({ threshold: Math.max(...reached), activity_count: count })
    }
    case "expiry": {
      const warning = integerParam(facts.params, "warning_days", 30, 0)
      if (warning === undefined) return invalid
      const expires = facts.certification_expires_at ?? null
      if (expires === null) return notDue
      const left = dayNumber(expires) - today
      return left >= 0 && left <= warning ? due({ expires_on: expires, days_left: left }) : notDue
    }
  }
}

/** What every scenario asks: the mentor, the organisation's day and configuration, devices, past notifications. */
const commonFacts = (sql: SqlClient.SqlClient, scenario: ScenarioType, today: Statement.Fragment) => sql`
  m.organisation_id,
  ${today}::text as evaluation_date,
  m.notifications_enabled,
  coalesce(c.enabled, true) as enabled,
  c.cooldown_days,
  c.params,
  exists (select from push_tokens t where t.user_id = m.user_id and t.revoked_at is null) as has_live_token,
  coalesce((
    select json_agg(json_build_array(n.evaluation_date::text, n.cooldown_window_start::text))
    from scenario_notifications n where n.user_id = m.user_id and n.scenario_type = ${scenario}
  ), '[]') as notified
`

/** What only one scenario asks. */
const scenarioFacts = (sql: SqlClient.SqlClient, scenario: ScenarioType, today: Statement.Fragment) => {
  switch (scenario) {
    case "inactivity":
      return sql`
        (m.created_at at time zone o.timezone)::date::text as created_on,
        (select max(x.activity_date)::text from mentor_activities x where x.user_id = m.user_id and x.activity_date <= ${today})
          as last_activity_date
      `
    case "milestone":
      return sql`
        (select count(*)::integer from mentor_activities x where x.user_id = m.user_id and x.activity_date <= ${today})
          as activity_count,
        (
          select max((n.payload ->> 'threshold')::numeric)::float8
          from scenario_notifications n
          where n.user_id = m.user_id and n.scenario_type = 'milestone'
            and jsonb_typeof(n.payload -> 'threshold') = 'number'
        ) as highest_threshold
      `
    case "expiry":
      return sql`m.certification_expires_at::text as certification_expires_at`
  }
}

/** Everything about one mentor and one scenario, in one query. */
const factsOf = (sql: SqlClient.SqlClient, userId: string, scenario: ScenarioType, now: Date) => {
  const today = sql`(${now.toISOString()}::timestamptz at time zone o.timezone)::date`
  return sql<Facts>`
    select ${commonFacts(sql, scenario, today)}, ${scenarioFacts(sql, scenario, today)}
    from peer_mentors m
    join organisations o on o.id = m.organisation_id
    left join scenario_evaluation_config c on c.organisation_id = m.organisation_id and c.scenario_type = ${scenario}
    where m.user_id = ${userId} and m.status = 'active'
  `.pipe(Effect.map((rows) => rows[0]))
}

const defaultCooldown = (scenario: ScenarioType) => scenarioDefaults[scenario].cooldownDays

interface Due {
  readonly scenario: ScenarioType
  readonly facts: Facts
  readonly payload: Payload
  readonly windowStart: string
  readonly key: string
}

type Verdict =
  | { readonly _tag: "Send"; readonly due: Due }
  | { readonly _tag: "Suppressed"; readonly reason: "opted_out" | "no_push_token" | "cooldown" }

/** The suppression order of the scheduler: opted out, then no live device, then cooldown. */
const decide = (userId: string, scenario: ScenarioType, facts: Facts, payload: Payload): Verdict => {
  const cooldown = facts.cooldown_days ?? defaultCooldown(scenario)
  const today = dayNumber(facts.evaluation_date)
  const windowStart = dateOf(Math.floor(today / cooldown) * cooldown)

  // A notification less than cooldown_days away on either side, or in the same window.
  const cooling = facts.notified.some(
    ([date, window]) => Math.abs(dayNumber(date) - today) < cooldown || window === windowStart
  )

  if (!facts.notifications_enabled) return { _tag: "Suppressed", reason: "opted_out" }
  if (!facts.has_live_token) return { _tag: "Suppressed", reason: "no_push_token" }
  if (cooling) return { _tag: "Suppressed", reason: "cooldown" }
  const key = `${userId}:${scenario}:${facts.evaluation_date}`
  return { _tag: "Send", due: { scenario, facts, payload, windowStart, key } }
}

const insertNotification = (sql: SqlClient.SqlClient, userId: string, due: Due, invocationId: string) =>
  sql<{ id: string }>`
    insert into scenario_notifications (
      user_id, organisation_id, scenario_type, evaluation_date, cooldown_window_start, idempotency_key, payload,
      status, attempts, invocation_id
    )
    values (
      ${userId}, ${due.facts.organisation_id}, ${due.scenario}, ${due.facts.evaluation_date}::date,
      ${due.windowStart}::date, ${due.key}, ${JSON.stringify(due.payload)}::text::jsonb, 'pending', 0, ${invocationId}
    )
    on conflict do nothing
    returning id
  `.pipe(Effect.map((rows) => rows[0]?.id))

const liveTokens = (sql: SqlClient.SqlClient, userId: string) =>
  sql<{ id: string; token: string; platform: "fcm" | "expo" }>`
    select id::text as id, token, platform from push_tokens where user_id = ${userId} and revoked_at is null order by id
  `.pipe(
    Effect.map((rows): ReadonlyArray<PushTokenRow> => rows.map((row) => ({ ...row, token: Redacted.make(row.token) })))
  )

const recordSend = (sql: SqlClient.SqlClient, id: string, delivered: boolean) =>
  sql`
    update scenario_notifications
    set status = ${delivered ? "dispatched" : "failed"}, attempts = attempts + 1,
      dispatched_at = case when ${delivered} then now() end
    where id = ${id}
  `

/** Claims, sends and records one notification: three statements and one send. */
const send = (sql: SqlClient.SqlClient, userId: string, due: Due, invocationId: string) =>
  Effect.gen(function* () {
    const provider = yield* PushProvider
    const id = yield* insertNotification(sql, userId, due, invocationId)
    if (id === undefined) return "duplicate" as const

    const tokens = yield* liveTokens(sql, userId)
    const deliveries = yield* provider.send({
      notificationId: id,
      userId,
      scenarioType: due.scenario,
      content: renderMessage(due.scenario, id, due.payload),
      tokens
    })
    const delivered = deliveries.some((delivery) => delivery.outcome === "delivered")
    yield* recordSend(sql, id, delivered)
    return delivered ? ("dispatched" as const) : ("failed" as const)
  })

interface MentorOutcome {
  failed: boolean
  readonly suppressed: Array<keyof NaiveResult["suppressedBy"]>
  readonly sent: Array<"dispatched" | "failed">
}

/** One mentor: a query per scenario, and the claim, lookup and record of each notification due. */
const judgeMentor = (sql: SqlClient.SqlClient, userId: string, options: NaiveOptions) =>
  Effect.gen(function* () {
    const outcome: MentorOutcome = { failed: false, suppressed: [], sent: [] }

    for (const scenario of options.scenarios) {
      const facts = yield* factsOf(sql, userId, scenario, options.now).pipe(Effect.catchAll(() => Effect.succeed(null)))
      // No longer active: not judged at all.
      if (facts === undefined) return undefined
      if (facts === null) {
        outcome.failed = true
        continue
      }
      if (!facts.enabled) continue

      const judgement = judge(scenario, facts)
      if (judgement._tag === "Invalid") outcome.failed = true
      if (judgement._tag !== "Due") continue

      const verdict = decide(userId, scenario, facts, judgement.payload)
      if (verdict._tag === "Suppressed") {
        outcome.suppressed.push(verdict.reason)
        continue
      }

      const sent = yield* send(sql, userId, verdict.due, options.invocationId)
      if (sent === "duplicate") outcome.suppressed.push("duplicate")
      else outcome.sent.push(sent)
    }

    return outcome
  })

/** Judges every active mentor one by one, and sends what is due, one notification at a time. */
export const runNaive = (
  options: NaiveOptions
): Effect.Effect<NaiveResult, SqlError.SqlError | PushError, SqlClient.SqlClient | PushProvider> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const mentors = yield* sql<{ user_id: string }>`
      select user_id from peer_mentors where status = 'active' order by user_id
    `
    const result = {
      evaluated: 0,
      notifications: 0,
      dispatched: 0,
      suppressedBy: { opted_out: 0, no_push_token: 0, cooldown: 0, duplicate: 0 },
      errors: 0
    }

    for (const { user_id: userId } of mentors) {
      const outcome = yield* judgeMentor(sql, userId, options)
      if (outcome === undefined) continue

      result.evaluated += 1
      if (outcome.failed) result.errors += 1
      for (const reason of outcome.suppressed) result.suppressedBy[reason] += 1
      result.notifications += outcome.sent.length
      result.dispatched += outcome.sent.filter((sent) => sent === "dispatched").length
    }

    return result
  })
