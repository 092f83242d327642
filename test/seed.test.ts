import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { isDatabaseEmpty, type SeedOptions, seed } from "../adapters/cli/Seed.ts"
import { describeEachDatabase, rolledBack } from "./support/databases.ts"

// The night Europe moves to summer time, when Sydney's date is already a day ahead of New York's.
const now = new Date("2025-03-30T00:30:00Z")

// More mentors than one generated chunk holds, so that chunk boundaries are covered.
const options: SeedOptions = { mentors: 1500, randomSeed: 7, now }

const tables = [
  "organisations",
  "chapters",
  "peer_mentors",
  "mentor_activities",
  "push_tokens",
  "scenario_evaluation_config"
] as const

const countRows = (table: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly n: number }>`select count(*)::int as n from ${sql(table)}`
    return rows[0]?.n ?? 0
  })

/** What `seed` wrote, in a stable order: mentors in full, activities, tokens and organisations as digests. */
const snapshot = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const mentors = yield* sql`select * from peer_mentors order by user_id`
  const digests = yield* sql`
    select
      (select md5(string_agg(concat_ws('|', user_id, activity_date, kind, created_at), ',' order by user_id, activity_date,
        kind, created_at)) from mentor_activities) as activities,
      (select md5(string_agg(concat_ws('|', user_id, token, platform, created_at, revoked_at), ',' order by token))
        from push_tokens) as tokens,
      (select md5(string_agg(concat_ws('|', id, name, timezone), ',' order by id)) from organisations) as organisations
  `
  return { mentors, digests }
})

/**
 * Mentors each scenario would notify at `now`, following the scenario rules over plain tables: active, opted in,
 * with a live token, dates taken in the organisation's zone.
 */
const wouldFire = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly inactivity: number; readonly milestone: number; readonly expiry: number }>`
    with mentor as (
      select
        m.user_id,
        m.certification_expires_at,
        (${now.toISOString()}::timestamptz at time zone o.timezone)::date as today,
        (m.created_at at time zone o.timezone)::date as joined,
        coalesce((c.params ->> 'inactivity_days')::int, 14) as inactivity_days
      from peer_mentors m
      join organisations o on o.id = m.organisation_id
      left join scenario_evaluation_config c on c.organisation_id = m.organisation_id and c.scenario_type = 'inactivity'
      where m.status = 'active'
        and m.notifications_enabled
        and exists (select 1 from push_tokens t where t.user_id = m.user_id and t.revoked_at is null)
    ),
    activity as (
      select user_id, count(*)::int as n, max(activity_date) as latest from mentor_activities group by user_id
    )
    select
      count(*) filter (where coalesce(a.latest, m.joined) <= m.today - m.inactivity_days)::int as inactivity,
      count(*) filter (where coalesce(a.n, 0) >= 10)::int as milestone,
      count(*) filter (where m.certification_expires_at between m.today and m.today + 30)::int as expiry
    from mentor m
    left join activity a using (user_id)
  `
  return rows[0]
})

/** How many mentors fall into each engagement pattern the demo is meant to show. */
const engagement = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Record<string, number>>`
    with mentor as (
      select
        m.user_id,
        (${now.toISOString()}::timestamptz at time zone o.timezone)::date as today,
        (m.created_at at time zone o.timezone)::date as joined,
        (select count(*)::int from mentor_activities a where a.user_id = m.user_id) as n,
        (select max(activity_date) from mentor_activities a where a.user_id = m.user_id) as latest
      from peer_mentors m
      join organisations o on o.id = m.organisation_id
    )
    select
      count(*) filter (where latest between today - 120 and today - 15)::int as lapsed,
      count(*) filter (where latest >= today - 6)::int as this_week,
      count(*) filter (where joined >= today - 21 and n <= 3)::int as new_with_little,
      count(*) filter (where joined >= today - 21 and n = 0)::int as new_with_none,
      count(*) filter (where n in (10, 25, 50, 100, 250))::int as at_threshold,
      count(*) filter (where n in (11, 12, 26, 27, 51, 52, 101, 102))::int as just_over_threshold
    from mentor
  `
  return rows[0] ?? {}
})

const uuidV4 = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
const fcmToken = "^[A-Za-z0-9_-]{22}:APA91b[A-Za-z0-9_-]{134}$"
const expoToken = "^ExponentPushToken\\[[A-Za-z0-9_-]{22}\\]$"

describeEachDatabase("seed", (it, database) => {
  it.effect("tells an empty database from a seeded one", () =>
    rolledBack(
      Effect.gen(function* () {
        assert.isTrue(yield* isDatabaseEmpty)
        yield* seed({ ...options, mentors: 20 })
        assert.isFalse(yield* isDatabaseEmpty)
      })
    )
  )

  it.effect("reports the rows it wrote, and no personal data", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const summary = yield* seed(options)

        for (const table of tables) {
          assert.strictEqual(summary.counts[table], yield* countRows(table), table)
        }
        assert.strictEqual(summary.counts.peer_mentors, options.mentors)

        const people = yield* sql<{ readonly full_name: string; readonly email: string; readonly phone: string }>`
          select full_name, email, phone from peer_mentors
        `
        const reported = JSON.stringify(summary)
        assert.isFalse(people.some((p) => [p.full_name, p.email, p.phone].some((value) => reported.includes(value))))
      })
    )
  )

  it.effect("gives identical rows for the same arguments and different ones for another seed", () =>
    Effect.gen(function* () {
      const first = yield* rolledBack(Effect.zipRight(seed(options), snapshot))
      const second = yield* rolledBack(Effect.zipRight(seed(options), snapshot))
      const other = yield* rolledBack(Effect.zipRight(seed({ ...options, randomSeed: 8 }), snapshot))

      assert.deepStrictEqual(second, first)
      assert.notDeepEqual(other.digests, first.digests)
    })
  )

  it.effect("gives every scenario mentors to notify at now", () =>
    rolledBack(
      Effect.gen(function* () {
        yield* seed(options)
        const fire = yield* wouldFire

        assert.isAbove(fire?.inactivity ?? 0, 0, "inactivity")
        assert.isAbove(fire?.milestone ?? 0, 0, "milestone")
        assert.isAbove(fire?.expiry ?? 0, 0, "expiry")
      })
    )
  )

  it.effect("gives the scheduler's evaluation candidates for every scenario and nothing it cannot judge", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* seed(options)

        const rows = yield* sql<{ readonly scenario_type: string | null; readonly status: string; readonly n: number }>`
          select scenario_type, status, count(*)::int as n
          from public.scheduler_evaluate(
            array(select user_id from peer_mentors where status = 'active'),
            ${now.toISOString()}::timestamptz,
            array['inactivity', 'milestone', 'expiry']
          )
          group by 1, 2
        `
        const candidates = (scenario: string) =>
          rows.find((row) => row.scenario_type === scenario && row.status === "candidate")?.n ?? 0

        assert.isAbove(candidates("inactivity"), 0, "inactivity")
        assert.isAbove(candidates("milestone"), 0, "milestone")
        assert.isAbove(candidates("expiry"), 0, "expiry")
        assert.isFalse(
          rows.some((row) => row.status === "error"),
          "no errors"
        )
      })
    )
  )

  it.effect("mixes lapsed, regular, new and milestone mentors", () =>
    rolledBack(
      Effect.gen(function* () {
        const summary = yield* seed(options)
        const mix = yield* engagement

        for (const pattern of ["lapsed", "this_week", "new_with_little", "new_with_none", "at_threshold"]) {
          assert.isAbove(mix[pattern] ?? 0, 0, pattern)
        }
        assert.isAbove(mix.just_over_threshold ?? 0, 0, "just_over_threshold")

        const perMentor = summary.counts.mentor_activities / summary.counts.peer_mentors
        assert.isTrue(perMentor > 15 && perMentor < 25, `${perMentor} activities per mentor`)
      })
    )
  )

  it.effect("writes organisations in three zones, with two to four chapters each", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const summary = yield* seed(options)

        const zones = summary.organisations.map((org) => org.timezone)
        assert.strictEqual(new Set(zones).size, 3)
        assert.include(zones, "Europe/Oslo")
        assert.isTrue(summary.organisations.every((org) => org.chapters >= 2 && org.chapters <= 4 && org.mentors > 0))

        const [ids] = yield* sql<{ readonly bad: number; readonly unassigned: number }>`
          select
            (select count(*)::int from organisations where id::text !~ ${uuidV4})
              + (select count(*)::int from chapters where id::text !~ ${uuidV4})
              + (select count(*)::int from peer_mentors where user_id::text !~ ${uuidV4}) as bad,
            (select count(*)::int from peer_mentors where chapter_id is null) as unassigned
        `
        assert.strictEqual(ids?.bad, 0)
        assert.isAbove(ids?.unassigned ?? 0, 0)
      })
    )
  )

  it.effect("dates activities between joining and today, in the organisation's zone", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* seed(options)

        const [dates] = yield* sql<{ readonly outside: number; readonly oldest: number }>`
          select
            count(*) filter (where a.activity_date > (${now.toISOString()}::timestamptz at time zone o.timezone)::date
              or a.activity_date < (m.created_at at time zone o.timezone)::date
              or a.created_at > ${now.toISOString()}::timestamptz)::int as outside,
            max((${now.toISOString()}::timestamptz at time zone o.timezone)::date - a.activity_date) as oldest
          from mentor_activities a
          join peer_mentors m using (user_id)
          join organisations o on o.id = m.organisation_id
        `
        assert.strictEqual(dates?.outside, 0)
        assert.isTrue((dates?.oldest ?? 0) > 480 && (dates?.oldest ?? 0) <= 550, `${dates?.oldest} days`)
      })
    )
  )

  it.effect("mixes statuses, opt-outs and certification dates", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* seed(options)

        const [mix] = yield* sql<Record<string, number>>`
          select
            count(*) filter (where status = 'active')::int as active,
            count(*) filter (where status = 'paused')::int as paused,
            count(*) filter (where status = 'inactive')::int as inactive,
            count(*) filter (where not notifications_enabled)::int as opted_out,
            count(*) filter (where certification_expires_at is null)::int as uncertified,
            count(*) filter (where certification_expires_at < ${now.toISOString()}::date - 1)::int as expired,
            count(*) filter (where certification_expires_at > ${now.toISOString()}::date + 31)::int as valid
          from peer_mentors
        `
        const share = (key: string) => (mix?.[key] ?? 0) / options.mentors

        assert.isTrue(share("active") > 0.8, "mostly active")
        assert.isTrue(share("paused") > 0 && share("inactive") > 0, "some paused and inactive")
        assert.isTrue(share("opted_out") > 0.02 && share("opted_out") < 0.08, "about 5% opted out")
        assert.isTrue(share("uncertified") > 0 && share("expired") > 0 && share("valid") > 0.5, "certification mix")
      })
    )
  )

  it.effect("gives most mentors plausible push tokens, some revoked, some two", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* seed(options)

        const [tokens] = yield* sql<Record<string, number>>`
          select
            count(distinct user_id)::int as mentors,
            count(*) filter (where not (
              (platform = 'fcm' and token ~ ${fcmToken}) or (platform = 'expo' and token ~ ${expoToken})
            ))::int as malformed,
            count(*) filter (where revoked_at is not null)::int as revoked,
            count(*) filter (where platform = 'expo')::int as expo,
            (select count(*)::int from (select user_id from push_tokens group by user_id having count(*) = 2) two) as twice
          from push_tokens
        `
        const withTokens = (tokens?.mentors ?? 0) / options.mentors

        assert.isTrue(withTokens > 0.8 && withTokens < 0.9, `${withTokens} of mentors with tokens`)
        assert.strictEqual(tokens?.malformed, 0)
        assert.isAbove(tokens?.revoked ?? 0, 0)
        assert.isAbove(tokens?.expo ?? 0, 0)
        assert.isAbove(tokens?.twice ?? 0, 0)
      })
    )
  )

  if (database === "pglite") {
    it.effect(
      "writes ten thousand mentors in chunks, every row accounted for (its speed is measured by the benchmark)",
      () =>
        rolledBack(
          Effect.gen(function* () {
            const summary = yield* seed({ ...options, mentors: 10_000 })
            assert.strictEqual(yield* countRows("mentor_activities"), summary.counts.mentor_activities)
            assert.strictEqual(yield* countRows("push_tokens"), summary.counts.push_tokens)
          })
        ),
      { timeout: 120_000 }
    )
  }
})
