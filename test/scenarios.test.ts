import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { describeEachDatabase, rolledBack } from "./support/databases.ts"

/**
 * The scenario rules and the claim/dispatch/run bookkeeping, through the SQL functions themselves. Every test runs
 * in a transaction that is rolled back, so each starts from the empty, migrated database.
 */

// 12:00 UTC: 2024-06-15 in every zone used here.
const noon = "2024-06-15T12:00:00Z"
// 23:30 UTC: already 2024-06-16 in Oslo (UTC+2), still 2024-06-15 in Los Angeles (UTC-7).
const lateEvening = "2024-06-15T23:30:00Z"

const allScenarios = ["inactivity", "milestone", "expiry"]

interface Row {
  readonly user_id: string
  readonly organisation_id: string
  readonly scenario_type: string | null
  readonly evaluation_date: string | null
  readonly cooldown_window_start: string | null
  readonly idempotency_key: string | null
  readonly payload: Record<string, unknown> | null
  readonly status: string
  readonly reason: string | null
}

/** The cooldown window rule, written again independently of the SQL: days since 1970-01-01, rounded down. */
const windowStart = (date: string, cooldownDays: number): string => {
  const days = Date.parse(`${date}T00:00:00Z`) / 86_400_000
  return new Date((days - (days % cooldownDays)) * 86_400_000).toISOString().slice(0, 10)
}

// Fixtures ----------------------------------------------------------------------------------------------------------

const organisation = (timezone = "Europe/Oslo") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ id: string }>`
      insert into organisations (name, timezone) values ('Test organisation', ${timezone}) returning id`
    return rows[0].id
  })

interface MentorOptions {
  readonly userId?: string
  readonly status?: "active" | "paused" | "inactive"
  /** Defaults to the day before `noon`, so that inactivity is not due without activities. */
  readonly createdAt?: string
  readonly certificationExpiresAt?: string | null
  readonly notificationsEnabled?: boolean
  readonly tokens?: "live" | "revoked" | "none"
}

const mentor = (organisationId: string, options: MentorOptions = {}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const userId = options.userId ?? randomUUID()

    yield* sql`
      insert into peer_mentors (
        user_id, organisation_id, status, full_name, email, certification_expires_at, notifications_enabled, created_at
      ) values (
        ${userId}, ${organisationId}, ${options.status ?? "active"}, 'Kari Nordmann', 'kari@example.org',
        ${options.certificationExpiresAt ?? null}::date, ${options.notificationsEnabled ?? true},
        ${options.createdAt ?? "2024-06-14T12:00:00Z"}::timestamptz
      )`
    const tokens = options.tokens ?? "live"
    if (tokens !== "none") {
      yield* token(userId, tokens === "revoked")
    }
    return userId
  })

const token = (userId: string, revoked = false) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ id: string }>`
      insert into push_tokens (user_id, token, platform, revoked_at)
      values (${userId}, ${`token-${randomUUID()}`}, 'fcm', ${revoked ? "2024-01-01T00:00:00Z" : null}::timestamptz)
      returning id`
    return rows[0].id
  })

const activities = (userId: string, dates: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      insert into mentor_activities (user_id, activity_date, kind)
      select ${userId}, d::date, 'session' from unnest(${dates}::text[]) as d`
  })

/** `count` activities, all on `date`. */
const activityCount = (userId: string, count: number, date = "2024-06-10") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      insert into mentor_activities (user_id, activity_date, kind)
      select ${userId}, ${date}::date, 'session' from generate_series(1, ${count}::integer)`
  })

interface ConfigOptions {
  readonly enabled?: boolean
  readonly cooldownDays?: number | null
  /** Written as given, so that malformed params can be stored. */
  readonly params?: unknown
}

const configure = (organisationId: string, scenarioType: string, options: ConfigOptions) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const params = options.params === undefined ? null : JSON.stringify(options.params)
    yield* sql`
      insert into scenario_evaluation_config (organisation_id, scenario_type, enabled, cooldown_days, params)
      values (${organisationId}, ${scenarioType}, ${options.enabled ?? true}, ${options.cooldownDays ?? null}::integer,
        ${params}::jsonb)`
  })

/** A notification sent earlier, as the claim step would have stored it. */
const notified = (
  userId: string,
  organisationId: string,
  scenarioType: string,
  evaluationDate: string,
  cooldownDays: number,
  payload: Record<string, unknown> = {}
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      insert into scenario_notifications (
        user_id, organisation_id, scenario_type, evaluation_date, cooldown_window_start, idempotency_key, status, payload
      ) values (
        ${userId}, ${organisationId}, ${scenarioType}, ${evaluationDate}::date,
        ${windowStart(evaluationDate, cooldownDays)}::date, ${`${userId}:${scenarioType}:${evaluationDate}`},
        'dispatched', ${JSON.stringify(payload)}::jsonb
      )`
  })

const evaluate = (userIds: ReadonlyArray<string>, now: string, scenarios: ReadonlyArray<string> = allScenarios) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // Dates as text, so that both drivers answer the same values.
    return yield* sql<Row>`
      select
        user_id::text, organisation_id::text, scenario_type,
        to_char(evaluation_date, 'YYYY-MM-DD') as evaluation_date,
        to_char(cooldown_window_start, 'YYYY-MM-DD') as cooldown_window_start,
        idempotency_key, payload, status, reason
      from scheduler_evaluate(${userIds}::uuid[], ${now}::timestamptz, ${scenarios}::text[])`
  })

/** The verdicts of one mentor as `[scenario_type, status, reason]`, in the function's order. */
const verdicts = (rows: ReadonlyArray<Row>, userId: string) =>
  rows.filter((row) => row.user_id === userId).map((row) => [row.scenario_type, row.status, row.reason])

const none = [[null, "none", null]]

const candidatesOf = (rows: ReadonlyArray<Row>) =>
  JSON.stringify(
    rows
      .filter((row) => row.status === "candidate")
      .map(({ reason: _reason, status: _status, ...candidate }) => candidate)
  )

interface Claimed {
  readonly notification_id: string
  readonly user_id: string
  readonly scenario_type: string
  readonly idempotency_key: string
  readonly payload: Record<string, unknown>
  readonly tokens: ReadonlyArray<{ readonly id: string; readonly token: string; readonly platform: string }>
}

const claimedFor = (claimed: ReadonlyArray<Claimed>, userId: string): Claimed => {
  const row = claimed.find((candidate) => candidate.user_id === userId)
  if (row === undefined) {
    return assert.fail(`nothing claimed for ${userId}`)
  }
  return row
}

const claim = (invocationId: string, candidates: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<Claimed>`
      select notification_id::text, user_id::text, scenario_type, idempotency_key, payload, tokens
      from scheduler_claim(${invocationId}::uuid, ${candidates}::jsonb)`
  })

// Scenario rules ------------------------------------------------------------------------------------------------------

describeEachDatabase("scheduler_evaluate", (it) => {
  it.effect("dates everything in the organisation's time zone", () =>
    rolledBack(
      Effect.gen(function* () {
        const oslo = yield* organisation("Europe/Oslo")
        const losAngeles = yield* organisation("America/Los_Angeles")
        const inOslo = yield* mentor(oslo, { certificationExpiresAt: "2024-06-15" })
        const inLosAngeles = yield* mentor(losAngeles, { certificationExpiresAt: "2024-06-15" })
        yield* activities(inOslo, ["2024-06-02"])
        yield* activities(inLosAngeles, ["2024-06-02"])

        const rows = yield* evaluate([inOslo, inLosAngeles], lateEvening, ["inactivity", "expiry"])

        // Oslo is on 2024-06-16: 14 days without activity, and the certificate expired yesterday.
        assert.deepStrictEqual(verdicts(rows, inOslo), [["inactivity", "candidate", null]])
        assert.deepStrictEqual(
          rows.filter((row) => row.user_id === inOslo).map((row) => row.evaluation_date),
          ["2024-06-16"]
        )
        // Los Angeles is on 2024-06-15: 13 days, and the certificate expires today.
        assert.deepStrictEqual(verdicts(rows, inLosAngeles), [["expiry", "candidate", null]])
        assert.deepStrictEqual(
          rows.filter((row) => row.user_id === inLosAngeles).map((row) => row.evaluation_date),
          ["2024-06-15"]
        )
      })
    )
  )

  it.effect("describes a candidate completely", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const userId = yield* mentor(org)
        yield* activities(userId, ["2024-05-20", "2024-06-01"])

        const rows = yield* evaluate([userId], noon, ["inactivity"])

        assert.deepStrictEqual(rows, [
          {
            user_id: userId,
            organisation_id: org,
            scenario_type: "inactivity",
            evaluation_date: "2024-06-15",
            cooldown_window_start: windowStart("2024-06-15", 7),
            idempotency_key: `${userId}:inactivity:2024-06-15`,
            payload: { last_activity_date: "2024-06-01", days_inactive: 14 },
            status: "candidate",
            reason: null
          }
        ])
      })
    )
  )

  it.effect("finds inactivity due at exactly inactivity_days, not a day sooner", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const due = yield* mentor(org)
        const notYet = yield* mentor(org)
        yield* activities(due, ["2024-06-01"])
        yield* activities(notYet, ["2024-06-02"])

        const rows = yield* evaluate([due, notYet], noon, ["inactivity"])

        assert.deepStrictEqual(verdicts(rows, due), [["inactivity", "candidate", null]])
        assert.deepStrictEqual(verdicts(rows, notYet), none)
      })
    )
  )

  it.effect("ignores activities dated after the evaluation date", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const userId = yield* mentor(org)
        yield* activities(userId, ["2024-06-01", "2024-06-20"])

        const rows = yield* evaluate([userId], noon, ["inactivity"])

        assert.deepStrictEqual(verdicts(rows, userId), [["inactivity", "candidate", null]])
      })
    )
  )

  it.effect(
    "counts inactivity from the date the mentor was created, in the organisation's zone, without activity",
    () =>
      rolledBack(
        Effect.gen(function* () {
          const org = yield* organisation("Europe/Oslo")
          // 23:30 UTC on 2024-05-31 is 2024-06-01 in Oslo: 14 days before 2024-06-15.
          const due = yield* mentor(org, { createdAt: "2024-05-31T23:30:00Z" })
          // 22:30 UTC on 2024-06-01 is 2024-06-02 in Oslo: 13 days.
          const notYet = yield* mentor(org, { createdAt: "2024-06-01T22:30:00Z" })

          const rows = yield* evaluate([due, notYet], noon, ["inactivity"])

          assert.deepStrictEqual(verdicts(rows, due), [["inactivity", "candidate", null]])
          assert.deepStrictEqual(rows.find((row) => row.user_id === due)?.payload, {
            last_activity_date: null,
            days_inactive: 14
          })
          assert.deepStrictEqual(verdicts(rows, notYet), none)
        })
      )
  )

  it.effect("finds expiry due from the evaluation date to warning_days later, inclusive", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const today = yield* mentor(org, { certificationExpiresAt: "2024-06-15" })
        const lastDay = yield* mentor(org, { certificationExpiresAt: "2024-07-15" })
        const tooFar = yield* mentor(org, { certificationExpiresAt: "2024-07-16" })
        const yesterday = yield* mentor(org, { certificationExpiresAt: "2024-06-14" })
        const never = yield* mentor(org, { certificationExpiresAt: null })

        const rows = yield* evaluate([today, lastDay, tooFar, yesterday, never], noon, ["expiry"])

        assert.deepStrictEqual(verdicts(rows, today), [["expiry", "candidate", null]])
        assert.deepStrictEqual(rows.find((row) => row.user_id === today)?.payload, {
          expires_on: "2024-06-15",
          days_left: 0
        })
        assert.deepStrictEqual(rows.find((row) => row.user_id === lastDay)?.payload, {
          expires_on: "2024-07-15",
          days_left: 30
        })
        assert.deepStrictEqual(verdicts(rows, tooFar), none)
        assert.deepStrictEqual(verdicts(rows, yesterday), none)
        assert.deepStrictEqual(verdicts(rows, never), none)
      })
    )
  )

  it.effect("notifies the highest milestone reached that was never notified, and no lower one afterwards", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const fresh = yield* mentor(org)
        const belowFirst = yield* mentor(org)
        const sameStep = yield* mentor(org)
        const nextStep = yield* mentor(org)
        yield* activityCount(fresh, 27)
        yield* activityCount(belowFirst, 9)
        yield* activityCount(sameStep, 30)
        yield* activityCount(nextStep, 50)
        yield* notified(sameStep, org, "milestone", "2024-06-01", 1, { threshold: 25, activity_count: 25 })
        yield* notified(nextStep, org, "milestone", "2024-06-01", 1, { threshold: 25, activity_count: 25 })

        const rows = yield* evaluate([fresh, belowFirst, sameStep, nextStep], noon, ["milestone"])

        assert.deepStrictEqual(verdicts(rows, fresh), [["milestone", "candidate", null]])
        assert.deepStrictEqual(rows.find((row) => row.user_id === fresh)?.payload, {
          threshold: 25,
          activity_count: 27
        })
        assert.deepStrictEqual(verdicts(rows, belowFirst), none)
        assert.deepStrictEqual(verdicts(rows, sameStep), none)
        assert.deepStrictEqual(rows.find((row) => row.user_id === nextStep)?.payload, {
          threshold: 50,
          activity_count: 50
        })
      })
    )
  )

  it.effect("leaves out a disabled scenario", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const userId = yield* mentor(org, { certificationExpiresAt: "2024-06-20" })
        yield* activities(userId, ["2024-05-01"])
        yield* configure(org, "inactivity", { enabled: false })

        const rows = yield* evaluate([userId], noon)

        assert.deepStrictEqual(verdicts(rows, userId), [["expiry", "candidate", null]])
      })
    )
  )

  it.effect("applies an organisation's own params and cooldown", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const defaults = yield* organisation()
        const custom = yield* mentor(org, { certificationExpiresAt: "2024-06-30" })
        const standard = yield* mentor(defaults, { certificationExpiresAt: "2024-06-30" })
        for (const userId of [custom, standard]) {
          yield* activityCount(userId, 6, "2024-06-10")
        }
        yield* configure(org, "inactivity", { cooldownDays: 3, params: { inactivity_days: 5 } })
        yield* configure(org, "milestone", { params: { thresholds: [5] } })
        yield* configure(org, "expiry", { params: { warning_days: 10 } })

        const rows = yield* evaluate([custom, standard], noon)

        // Five days without activity, six activities past a threshold of five; the certificate is 15 days away.
        assert.deepStrictEqual(verdicts(rows, custom), [
          ["inactivity", "candidate", null],
          ["milestone", "candidate", null]
        ])
        assert.strictEqual(
          rows.find((row) => row.user_id === custom && row.scenario_type === "inactivity")?.cooldown_window_start,
          windowStart("2024-06-15", 3)
        )
        assert.deepStrictEqual(verdicts(rows, standard), [["expiry", "candidate", null]])
      })
    )
  )

  it.effect("holds back a scenario notified in the same cooldown window or within cooldown_days", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const sameWindow = yield* mentor(org)
        const previousWindow = yield* mentor(org)
        const cooledDown = yield* mentor(org)
        const otherScenario = yield* mentor(org)
        for (const userId of [sameWindow, previousWindow, cooledDown, otherScenario]) {
          yield* activities(userId, ["2024-05-01"])
        }
        // 2024-06-15's seven-day window starts on 2024-06-13.
        assert.strictEqual(windowStart("2024-06-15", 7), "2024-06-13")
        yield* notified(sameWindow, org, "inactivity", "2024-06-13", 7)
        // Three days ago, in the previous window, but within the last seven days.
        yield* notified(previousWindow, org, "inactivity", "2024-06-12", 7)
        // Exactly seven days ago: the cooldown is over.
        yield* notified(cooledDown, org, "inactivity", "2024-06-08", 7)
        yield* notified(otherScenario, org, "expiry", "2024-06-14", 7)

        const rows = yield* evaluate([sameWindow, previousWindow, cooledDown, otherScenario], noon, ["inactivity"])

        assert.deepStrictEqual(verdicts(rows, sameWindow), [["inactivity", "suppressed", "cooldown"]])
        assert.deepStrictEqual(verdicts(rows, previousWindow), [["inactivity", "suppressed", "cooldown"]])
        assert.deepStrictEqual(verdicts(rows, cooledDown), [["inactivity", "candidate", null]])
        assert.deepStrictEqual(verdicts(rows, otherScenario), [["inactivity", "candidate", null]])
      })
    )
  )

  it.effect("counts a notification dated ahead within cooldown_days, and not one dated far ahead", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const soonAhead = yield* mentor(org)
        const farAhead = yield* mentor(org)
        for (const userId of [soonAhead, farAhead]) yield* activities(userId, ["2024-05-01"])
        // As a run given a later `now` would have left them.
        yield* notified(soonAhead, org, "inactivity", "2024-06-18", 7)
        yield* notified(farAhead, org, "inactivity", "2024-09-01", 7)

        const rows = yield* evaluate([soonAhead, farAhead], noon, ["inactivity"])

        assert.deepStrictEqual(verdicts(rows, soonAhead), [["inactivity", "suppressed", "cooldown"]])
        assert.deepStrictEqual(verdicts(rows, farAhead), [["inactivity", "candidate", null]])
      })
    )
  )

  it.effect("suppresses opted-out mentors first, then mentors without a live token", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const optedOut = yield* mentor(org, { notificationsEnabled: false, tokens: "none" })
        const noToken = yield* mentor(org, { tokens: "none" })
        const revokedOnly = yield* mentor(org, { tokens: "revoked" })
        const noTokenInCooldown = yield* mentor(org, { tokens: "none" })
        for (const userId of [optedOut, noToken, revokedOnly, noTokenInCooldown]) {
          yield* activities(userId, ["2024-05-01"])
        }
        yield* notified(noTokenInCooldown, org, "inactivity", "2024-06-14", 7)

        const rows = yield* evaluate([optedOut, noToken, revokedOnly, noTokenInCooldown], noon, ["inactivity"])

        assert.deepStrictEqual(verdicts(rows, optedOut), [["inactivity", "suppressed", "opted_out"]])
        assert.deepStrictEqual(verdicts(rows, noToken), [["inactivity", "suppressed", "no_push_token"]])
        assert.deepStrictEqual(verdicts(rows, revokedOnly), [["inactivity", "suppressed", "no_push_token"]])
        assert.deepStrictEqual(verdicts(rows, noTokenInCooldown), [["inactivity", "suppressed", "no_push_token"]])
      })
    )
  )

  it.effect("answers nothing for mentors that are paused, inactive or unknown", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const paused = yield* mentor(org, { status: "paused" })
        const inactive = yield* mentor(org, { status: "inactive" })
        yield* activities(paused, ["2024-05-01"])
        yield* activities(inactive, ["2024-05-01"])

        const rows = yield* evaluate([paused, inactive, randomUUID()], noon)

        assert.deepStrictEqual(rows, [])
      })
    )
  )

  it.effect("reports an unknown time zone once per mentor and evaluates other organisations", () =>
    rolledBack(
      Effect.gen(function* () {
        const broken = yield* organisation("Europe/Olso")
        const posix = yield* organisation("UTC+05:00")
        const fine = yield* organisation("Europe/Oslo")
        const first = yield* mentor(broken)
        const second = yield* mentor(broken)
        const offset = yield* mentor(posix)
        const unaffected = yield* mentor(fine)
        yield* activities(unaffected, ["2024-05-01"])

        const rows = yield* evaluate([first, second, offset, unaffected], noon)

        assert.deepStrictEqual(verdicts(rows, first), [[null, "error", "invalid_timezone"]])
        assert.deepStrictEqual(verdicts(rows, second), [[null, "error", "invalid_timezone"]])
        // Postgres would read a POSIX string like this one, with its sign reversed; it is no zone name.
        assert.deepStrictEqual(verdicts(rows, offset), [[null, "error", "invalid_timezone"]])
        assert.deepStrictEqual(verdicts(rows, unaffected), [["inactivity", "candidate", null]])
      })
    )
  )

  it.effect("reports unusable params for that scenario only", () =>
    rolledBack(
      Effect.gen(function* () {
        const badValue = yield* organisation()
        const badThresholds = yield* organisation()
        const badCooldown = yield* organisation()
        const badShape = yield* organisation()
        const hugeDays = yield* organisation()
        const mentors = [
          yield* mentor(badValue, { certificationExpiresAt: "2024-06-20" }),
          yield* mentor(badThresholds, { certificationExpiresAt: "2024-06-20" }),
          yield* mentor(badCooldown, { certificationExpiresAt: "2024-06-20" }),
          yield* mentor(badShape, { certificationExpiresAt: "2024-06-20" }),
          yield* mentor(hugeDays, { certificationExpiresAt: "2024-06-20" })
        ]
        yield* configure(badValue, "inactivity", { params: { inactivity_days: "two weeks" } })
        yield* configure(badThresholds, "milestone", { params: { thresholds: [10, "25"] } })
        yield* configure(badCooldown, "inactivity", { cooldownDays: 0 })
        yield* configure(badShape, "milestone", { params: [10, 25] })
        // Numbers this large overflow date arithmetic; they must cost one scenario, not the mentor.
        yield* configure(hugeDays, "inactivity", { cooldownDays: 2_147_483_647 })
        yield* configure(hugeDays, "expiry", { params: { warning_days: 2_147_483_647 } })

        const rows = yield* evaluate(mentors, noon)

        assert.deepStrictEqual(verdicts(rows, mentors[0]), [
          ["expiry", "candidate", null],
          ["inactivity", "error", "invalid_scenario_config"]
        ])
        assert.deepStrictEqual(verdicts(rows, mentors[1]), [
          ["expiry", "candidate", null],
          ["milestone", "error", "invalid_scenario_config"]
        ])
        assert.deepStrictEqual(verdicts(rows, mentors[2]), [
          ["expiry", "candidate", null],
          ["inactivity", "error", "invalid_scenario_config"]
        ])
        assert.deepStrictEqual(verdicts(rows, mentors[3]), [
          ["expiry", "candidate", null],
          ["milestone", "error", "invalid_scenario_config"]
        ])
        assert.deepStrictEqual(verdicts(rows, mentors[4]), [
          ["expiry", "error", "invalid_scenario_config"],
          ["inactivity", "error", "invalid_scenario_config"]
        ])
      })
    )
  )

  it.effect("does not add a none row for a mentor whose only row is a config error", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const userId = yield* mentor(org)
        yield* configure(org, "milestone", { params: { thresholds: "ten" } })

        const rows = yield* evaluate([userId], noon)

        assert.deepStrictEqual(verdicts(rows, userId), [["milestone", "error", "invalid_scenario_config"]])
      })
    )
  )
})

// Paging --------------------------------------------------------------------------------------------------------------

describeEachDatabase("scheduler_active_page and scheduler_count_active", (it) => {
  const ids = [1, 2, 3, 4, 5].map((n) => `00000000-0000-4000-8000-00000000000${n}`)

  const page = (after: string | null, until: string | null, limit: number) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ user_id: string }>`
        select user_id::text from scheduler_active_page(${after}::uuid, ${until}::uuid, ${limit}::integer)`
      return rows.map((row) => row.user_id)
    })

  const count = (after: string | null, until: string | null) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ count: string }>`select scheduler_count_active(${after}::uuid, ${until}::uuid) as count`
      return Number(rows[0].count)
    })

  it.effect("pages through active mentors by user_id between exclusive after and inclusive until", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        for (const userId of ids) {
          yield* mentor(org, { userId })
        }
        yield* mentor(org, { userId: "00000000-0000-4000-8000-000000000000", status: "paused" })

        assert.deepStrictEqual(yield* page(null, null, 2), [ids[0], ids[1]])
        assert.deepStrictEqual(yield* page(ids[1], null, 2), [ids[2], ids[3]])
        assert.deepStrictEqual(yield* page(ids[3], null, 2), [ids[4]])
        assert.deepStrictEqual(yield* page(ids[4], null, 2), [])
        assert.deepStrictEqual(yield* page(null, ids[2], 10), [ids[0], ids[1], ids[2]])
        assert.deepStrictEqual(yield* page(ids[0], ids[2], 10), [ids[1], ids[2]])
        assert.strictEqual(yield* count(null, null), 5)
        assert.strictEqual(yield* count(ids[1], null), 3)
        assert.strictEqual(yield* count(ids[1], ids[3]), 2)
        assert.strictEqual(yield* count(null, ids[0]), 1)
      })
    )
  )
})

// Claiming and dispatch -----------------------------------------------------------------------------------------------

describeEachDatabase("scheduler_claim and scheduler_record_dispatch", (it) => {
  /** Two inactive mentors of one organisation, evaluated as of `noon`. */
  const dueMentors = Effect.gen(function* () {
    const org = yield* organisation()
    const first = yield* mentor(org)
    const second = yield* mentor(org)
    yield* activities(first, ["2024-05-01"])
    yield* activities(second, ["2024-05-01"])
    const rows = yield* evaluate([first, second], noon, ["inactivity"])
    return { first, second, rows }
  })

  it.effect("inserts candidates as pending notifications and answers them with live tokens", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { first, rows } = yield* dueMentors
        const extraToken = yield* token(first)
        yield* token(first, true)
        const invocationId = randomUUID()

        const claimed = yield* claim(invocationId, candidatesOf(rows))
        const stored = yield* sql<{ status: string; attempts: number; invocation_id: string }>`
          select status, attempts, invocation_id::text from scenario_notifications order by user_id`

        assert.strictEqual(claimed.length, 2)
        const forFirst = claimed.find((row) => row.user_id === first)
        assert.strictEqual(forFirst?.idempotency_key, `${first}:inactivity:2024-06-15`)
        assert.deepStrictEqual(forFirst?.payload, { last_activity_date: "2024-05-01", days_inactive: 45 })
        assert.strictEqual(forFirst?.tokens.length, 2)
        assert.isTrue(forFirst?.tokens.some((live) => live.id === extraToken))
        assert.isTrue(forFirst?.tokens.every((live) => live.platform === "fcm" && live.token.startsWith("token-")))
        assert.deepStrictEqual(
          stored.map((row) => [row.status, row.attempts, row.invocation_id]),
          [
            ["pending", 0, invocationId],
            ["pending", 0, invocationId]
          ]
        )
      })
    )
  )

  it.effect("answers nothing for candidates claimed before, and evaluation then holds them back", () =>
    rolledBack(
      Effect.gen(function* () {
        const { first, second, rows } = yield* dueMentors

        yield* claim(randomUUID(), candidatesOf(rows))
        const again = yield* claim(randomUUID(), candidatesOf(rows))
        const reevaluated = yield* evaluate([first, second], noon, ["inactivity"])

        assert.deepStrictEqual(again, [])
        assert.deepStrictEqual(verdicts(reevaluated, first), [["inactivity", "suppressed", "cooldown"]])
      })
    )
  )

  it.effect("inserts a candidate that appears twice in one batch once", () =>
    rolledBack(
      Effect.gen(function* () {
        const { first, rows } = yield* dueMentors
        const one = JSON.parse(candidatesOf(rows.filter((row) => row.user_id === first)))

        const claimed = yield* claim(randomUUID(), JSON.stringify([...one, ...one]))

        assert.deepStrictEqual(
          claimed.map((row) => row.user_id),
          [first]
        )
      })
    )
  )

  it.effect("answers only the new half of a batch that was half claimed already", () =>
    rolledBack(
      Effect.gen(function* () {
        const { first, second, rows } = yield* dueMentors

        yield* claim(randomUUID(), candidatesOf(rows.filter((row) => row.user_id === first)))
        const claimed = yield* claim(randomUUID(), candidatesOf(rows))

        assert.deepStrictEqual(
          claimed.map((row) => row.user_id),
          [second]
        )
      })
    )
  )

  it.effect("refuses a second notification in the same cooldown window under another key", () =>
    rolledBack(
      Effect.gen(function* () {
        const { first, rows } = yield* dueMentors
        const [candidate] = JSON.parse(candidatesOf(rows.filter((row) => row.user_id === first)))

        yield* claim(randomUUID(), JSON.stringify([candidate]))
        const claimed = yield* claim(
          randomUUID(),
          JSON.stringify([
            { ...candidate, evaluation_date: "2024-06-16", idempotency_key: `${first}:inactivity:2024-06-16` }
          ])
        )

        assert.deepStrictEqual(claimed, [])
      })
    )
  )

  it.effect("refuses the same milestone threshold claimed again under another date", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const userId = yield* mentor(org)
        const milestone = (date: string) =>
          JSON.stringify([
            {
              user_id: userId,
              organisation_id: org,
              scenario_type: "milestone",
              evaluation_date: date,
              cooldown_window_start: date,
              idempotency_key: `${userId}:milestone:${date}`,
              payload: { threshold: 10, activity_count: 10 }
            }
          ])

        const first = yield* claim(crypto.randomUUID(), milestone("2024-06-15"))
        const nextDay = yield* claim(crypto.randomUUID(), milestone("2024-06-16"))

        assert.strictEqual(first.length, 1)
        assert.strictEqual(nextDay.length, 0)
      })
    )
  )

  it.effect("answers an empty token list for a mentor without live tokens", () =>
    rolledBack(
      Effect.gen(function* () {
        const org = yield* organisation()
        const userId = yield* mentor(org, { tokens: "revoked" })
        const candidate = {
          user_id: userId,
          organisation_id: org,
          scenario_type: "expiry",
          evaluation_date: "2024-06-15",
          cooldown_window_start: windowStart("2024-06-15", 7),
          idempotency_key: `${userId}:expiry:2024-06-15`,
          payload: { expires_on: "2024-06-20", days_left: 5 }
        }

        const claimed = yield* claim(randomUUID(), JSON.stringify([candidate]))

        assert.deepStrictEqual(claimed[0]?.tokens, [])
      })
    )
  )

  it.effect("records dispatch outcomes and revokes only the listed tokens of the notification's mentor", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { first, second, rows } = yield* dueMentors
        const invocationId = randomUUID()
        const claimed = yield* claim(invocationId, candidatesOf(rows))
        const forFirst = claimedFor(claimed, first)
        const forSecond = claimedFor(claimed, second)
        const kept = yield* token(first)
        const othersToken = forSecond.tokens[0].id
        const results = [
          {
            notification_id: forFirst.notification_id,
            status: "dispatched",
            error_type: null,
            // The second mentor's token does not belong to this notification and must survive.
            revoked_token_ids: [forFirst.tokens[0].id, othersToken]
          },
          {
            notification_id: forSecond.notification_id,
            status: "failed",
            error_type: "push_unavailable",
            revoked_token_ids: []
          }
        ]

        const updated = yield* sql<{ count: number }>`
          select scheduler_record_dispatch(${invocationId}::uuid, ${JSON.stringify(results)}::jsonb) as count`
        // Another run cannot record over the claim, nor this run record it twice.
        const byAnother = yield* sql<{ count: number }>`
          select scheduler_record_dispatch(${randomUUID()}::uuid, ${JSON.stringify(results)}::jsonb) as count`
        const twice = yield* sql<{ count: number }>`
          select scheduler_record_dispatch(${invocationId}::uuid, ${JSON.stringify(results)}::jsonb) as count`
        const notifications = yield* sql<{
          user_id: string
          status: string
          attempts: number
          last_error_type: string | null
          dispatched: boolean
        }>`
          select user_id::text, status, attempts, last_error_type, dispatched_at is not null as dispatched
          from scenario_notifications`
        const revoked = yield* sql<{ id: string }>`
          select id::text from push_tokens where revoked_at is not null order by id`

        assert.strictEqual(updated[0].count, 2)
        assert.strictEqual(byAnother[0].count, 0)
        assert.strictEqual(twice[0].count, 0)
        assert.deepStrictEqual(
          notifications.find((row) => row.user_id === first),
          {
            user_id: first,
            status: "dispatched",
            attempts: 1,
            last_error_type: null,
            dispatched: true
          }
        )
        assert.deepStrictEqual(
          notifications.find((row) => row.user_id === second),
          {
            user_id: second,
            status: "failed",
            attempts: 1,
            last_error_type: "push_unavailable",
            dispatched: false
          }
        )
        assert.deepStrictEqual(
          revoked.map((row) => row.id),
          [forFirst.tokens[0].id]
        )
        assert.notStrictEqual(kept, forFirst.tokens[0].id)
      })
    )
  )
})

// Runs ----------------------------------------------------------------------------------------------------------------

describeEachDatabase("scheduler_open_run and scheduler_finish_run", (it) => {
  const open = (invocationId: string, startedAt: string) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ resume_cursor: string | null }>`
        select resume_cursor::text from scheduler_open_run(${invocationId}::uuid, ${startedAt}::timestamptz)`
      assert.strictEqual(rows.length, 1)
      return rows[0].resume_cursor
    })

  const finish = (invocationId: string, finishedAt: string, outcome: string, resumeCursor: string | null) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`select scheduler_finish_run(${invocationId}::uuid, ${finishedAt}::timestamptz, ${outcome},
        ${JSON.stringify({ evaluated: 1 })}::jsonb, ${resumeCursor}::uuid)`
    })

  const cursor = "00000000-0000-4000-8000-0000000000aa"

  it.effect("resumes where the latest completed or partial run stopped, passing over failed ones", () =>
    rolledBack(
      Effect.gen(function* () {
        const runs = [1, 2, 3, 4, 5].map(() => randomUUID())

        assert.strictEqual(yield* open(runs[0], "2024-06-15T10:00:00Z"), null)
        yield* finish(runs[0], "2024-06-15T10:01:00Z", "partial", cursor)

        assert.strictEqual(yield* open(runs[1], "2024-06-15T11:00:00Z"), cursor)
        yield* finish(runs[1], "2024-06-15T11:01:00Z", "failed", "00000000-0000-4000-8000-0000000000bb")

        // The failed run is passed over: the partial one before it still says where to go on.
        assert.strictEqual(yield* open(runs[2], "2024-06-15T12:00:00Z"), cursor)
        yield* finish(runs[2], "2024-06-15T12:01:00Z", "completed", null)

        assert.strictEqual(yield* open(runs[3], "2024-06-15T13:00:00Z"), null)
      })
    )
  )

  it.effect("records the outcome, stats and cursor of a run, also one that was never opened", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const opened = randomUUID()
        const unopened = randomUUID()

        yield* open(opened, "2024-06-15T10:00:00Z")
        yield* finish(opened, "2024-06-15T10:05:00Z", "partial", cursor)
        yield* finish(unopened, "2024-06-15T11:00:00Z", "failed", null)
        const rows = yield* sql<{
          invocation_id: string
          outcome: string
          stats: unknown
          resume_cursor: string | null
        }>`
          select invocation_id::text, outcome, stats, resume_cursor::text from scheduler_runs order by started_at`

        assert.deepStrictEqual(rows, [
          { invocation_id: opened, outcome: "partial", stats: { evaluated: 1 }, resume_cursor: cursor },
          { invocation_id: unopened, outcome: "failed", stats: { evaluated: 1 }, resume_cursor: null }
        ])
      })
    )
  )
})
