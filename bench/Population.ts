/**
 * The benchmark's population, generated inside the database with `generate_series`: a hundred
 * thousand mentors with two million activities take seconds this way, where rows built in
 * JavaScript and sent as parameters take a minute.
 *
 * Exactly `activeMentors` mentors are active, plus a tenth as many paused or inactive ones the
 * scheduler must skip. Every value is a function of the mentor's number (through `hashtext`), so
 * the same size gives the same rows on every run, on the server and on PGlite alike. The mix is
 * shaped like a service that has been running for a while: about twenty activities per mentor,
 * milestones already notified up to the last threshold reached, some mentors notified of their
 * inactivity a few days ago (in cooldown) and some long ago.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Effect } from "effect"

export interface PopulationOptions {
  readonly activeMentors: number
  /** The calendar date the population is built around, `YYYY-MM-DD`; the run judges this day. */
  readonly today: string
}

export interface PopulationCounts {
  readonly peer_mentors: number
  readonly active_mentors: number
  readonly mentor_activities: number
  readonly push_tokens: number
  readonly scenario_notifications: number
}

const organisations = [
  { id: "b0000000-0000-4000-8000-000000000001", name: "Bench Norge", timezone: "Europe/Oslo" },
  { id: "b0000000-0000-4000-8000-000000000002", name: "Bench Hudson", timezone: "America/New_York" },
  { id: "b0000000-0000-4000-8000-000000000003", name: "Bench Harbour", timezone: "Australia/Sydney" }
] as const

/** A non-negative pseudo-random integer below `modulus`, fixed by the mentor's number and a salt. */
const draw = (salt: string, modulus: number | string, index = "p.i") =>
  `((pg_catalog.hashtext(${index}::text || ':${salt}') & 2147483647) % ${modulus})`

/**
 * One row per mentor with everything the other statements derive from it. Patterns (by `kind`):
 * 0 regular, 1 occasional, 2 lapsed, 3 new, 4 just past a milestone.
 */
const plan = (total: number) => `
  select
    p.i,
    pg_catalog.md5('bench-mentor:' || p.i)::uuid as user_id,
    k.kind,
    k.created_ago,
    k.last_ago,
    k.activity_count
  from pg_catalog.generate_series(1, ${total}) as p (i)
  cross join lateral (
    select case
      when ${draw("kind", 100)} < 38 then 0
      when ${draw("kind", 100)} < 68 then 1
      when ${draw("kind", 100)} < 86 then 2
      when ${draw("kind", 100)} < 94 then 3
      else 4
    end as kind
  ) as pattern
  cross join lateral (
    select
      pattern.kind as kind,
      case pattern.kind when 3 then ${draw("created", 22)} else 130 + ${draw("created", 418)} end as created_ago,
      case pattern.kind
        when 0 then ${draw("last", 7)}
        when 1 then ${draw("last", 14)}
        when 2 then 15 + ${draw("last", 106)}
        when 3 then 0
        else ${draw("last", 4)}
      end as last_ago,
      case pattern.kind
        when 0 then 18 + ${draw("count", 21)}
        when 1 then 8 + ${draw("count", 13)}
        when 2 then 5 + ${draw("count", 21)}
        when 3 then ${draw("count", 4)}
        else (array[10, 25, 50])[1 + ${draw("count", 3)}]
      end as activity_count
  ) as k
`

const insertOrganisations = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    yield* sql`insert into organisations ${sql.insert(organisations.map((organisation) => ({ ...organisation })))}`

    // One organisation waits longer before it calls a mentor inactive, so configuration rows are read too.
    yield* sql`
      insert into scenario_evaluation_config (organisation_id, scenario_type, enabled, cooldown_days, params)
      values (${organisations[1].id}, 'inactivity', true, 7, '{"inactivity_days": 21}'::jsonb)
    `
  })

const insertMentors = (sql: SqlClient.SqlClient, options: PopulationOptions, total: number) =>
  sql.unsafe(`
    insert into public.peer_mentors (
      user_id, organisation_id, status, full_name, email, certification_expires_at, notifications_enabled, created_at
    )
    select
      p.user_id,
      (array['${organisations[0].id}', '${organisations[1].id}', '${organisations[2].id}']::uuid[])[
        1 + ${draw("organisation", 3)}
      ],
      case when p.i <= ${options.activeMentors} then 'active' when p.i % 2 = 0 then 'paused' else 'inactive' end,
      'Mentor ' || p.i,
      'mentor' || p.i || '@example.com',
      case
        when ${draw("certification", 100)} < 15 then null
        when ${draw("certification", 100)} < 25 then date '${options.today}' - (1 + ${draw("expired", 400)})
        when ${draw("certification", 100)} < 33 then date '${options.today}' + ${draw("soon", 31)}
        else date '${options.today}' + 31 + ${draw("later", 700)}
      end,
      ${draw("opt-out", 20)} <> 0,
      ((date '${options.today}' - p.created_ago) + time '12:00') at time zone 'UTC'
    from (${plan(total)}) as p
  `)

/** The latest activity is `last_ago` days back; the others anywhere between joining and then. */
const insertActivities = (sql: SqlClient.SqlClient, options: PopulationOptions, total: number) =>
  sql.unsafe(`
    insert into public.mentor_activities (user_id, activity_date, kind, created_at)
    select
      p.user_id,
      date '${options.today}' - case when a.j = 1 then p.last_ago
        else p.last_ago + ${draw("day", "(p.created_ago - p.last_ago + 1)", "(p.i || ':' || a.j)")} end,
      (array['session', 'check_in', 'training', 'event'])[1 + ${draw("activity-kind", 4, "(p.i || ':' || a.j)")}],
      ((date '${options.today}' - p.created_ago) + time '12:00') at time zone 'UTC'
    from (${plan(total)}) as p
    cross join lateral pg_catalog.generate_series(1, p.activity_count) as a (j)
  `)

/**
 * 85 in 100 mentors have a live device (a tenth of them a second one, some with the first revoked);
 * 3 in 100 uninstalled the app (a revoked token only); the rest never had one.
 */
const insertTokens = (sql: SqlClient.SqlClient, total: number) =>
  sql.unsafe(`
    insert into public.push_tokens (user_id, token, platform, revoked_at)
    select
      m.user_id,
      case when t.n = 2 then 'ExponentPushToken[' || pg_catalog.md5(p.i || ':token:' || t.n) || ']'
        else pg_catalog.md5(p.i || ':token:' || t.n) || ':APA91b' || pg_catalog.md5(p.i || ':body:' || t.n) end,
      case when t.n = 2 then 'expo' else 'fcm' end,
      case when t.n = 1 and (m.roll < 6 or m.roll >= 85) then pg_catalog.now() end
    from pg_catalog.generate_series(1, ${total}) as p (i)
    cross join lateral (
      select pg_catalog.md5('bench-mentor:' || p.i)::uuid as user_id, ${draw("devices", 100)} as roll
    ) as m
    cross join pg_catalog.generate_series(1, 2) as t (n)
    where (t.n = 1 and m.roll < 88) or (t.n = 2 and m.roll < 10)
  `)

/**
 * History: the highest milestone reached is notified already, except for mentors who just reached
 * one; a third of the lapsed mentors were told of their inactivity three days ago, the others a
 * month ago.
 */
const insertHistory = (sql: SqlClient.SqlClient, options: PopulationOptions, total: number) =>
  Effect.gen(function* () {
    const notifiedThreshold = `(
      select pg_catalog.max(t) from pg_catalog.unnest(array[10, 25, 50, 100, 250]) as t
      where t < p.activity_count or (t = p.activity_count and p.kind <> 4)
    )`

    yield* sql.unsafe(`
      insert into public.scenario_notifications (
        user_id, organisation_id, scenario_type, evaluation_date, cooldown_window_start, idempotency_key, payload,
        status, attempts, dispatched_at
      )
      select
        m.user_id, m.organisation_id, 'milestone', h.day, h.day,
        m.user_id || ':milestone:' || pg_catalog.to_char(h.day, 'YYYY-MM-DD'),
        pg_catalog.jsonb_build_object('threshold', h.threshold, 'activity_count', h.threshold),
        'dispatched', 1, h.day + time '12:00'
      from (${plan(total)}) as p
      join public.peer_mentors as m on m.user_id = p.user_id
      cross join lateral (select ${notifiedThreshold} as threshold, date '${options.today}' - 90 as day) as h
      where h.threshold is not null
    `)

    yield* sql.unsafe(`
      insert into public.scenario_notifications (
        user_id, organisation_id, scenario_type, evaluation_date, cooldown_window_start, idempotency_key, payload,
        status, attempts, dispatched_at
      )
      select
        m.user_id, m.organisation_id, 'inactivity', h.day,
        date '1970-01-01' + ((h.day - date '1970-01-01') / 7) * 7,
        m.user_id || ':inactivity:' || pg_catalog.to_char(h.day, 'YYYY-MM-DD'),
        pg_catalog.jsonb_build_object('last_activity_date', null, 'days_inactive', 30),
        'dispatched', 1, h.day + time '12:00'
      from (${plan(total)}) as p
      join public.peer_mentors as m on m.user_id = p.user_id
      cross join lateral (
        select date '${options.today}' - case when ${draw("told", 3)} = 0 then 3 else 30 end as day
      ) as h
      where p.kind = 2
    `)
  })

const countRows = (sql: SqlClient.SqlClient) =>
  sql<PopulationCounts>`
    select
      (select pg_catalog.count(*)::integer from peer_mentors) as peer_mentors,
      (select pg_catalog.count(*)::integer from peer_mentors where status = 'active') as active_mentors,
      (select pg_catalog.count(*)::integer from mentor_activities) as mentor_activities,
      (select pg_catalog.count(*)::integer from push_tokens) as push_tokens,
      (select pg_catalog.count(*)::integer from scenario_notifications) as scenario_notifications
  `.pipe(Effect.map((rows) => rows[0] as PopulationCounts))

/**
 * The rows are consistent by construction, and checking two million foreign keys one row at a time
 * would take most of the time of a large population. Turning the checks off takes a superuser (the
 * local server's postgres, PGlite's only user); anyone else gets the checks and waits longer.
 */
const skipForeignKeyChecks = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const rows = yield* sql<{ superuser: boolean }>`
      select rolsuper as superuser from pg_catalog.pg_roles where rolname = current_user
    `
    if (rows[0]?.superuser === true) yield* sql`set local session_replication_role = replica`
  })

/** Fills an empty, migrated database and analyses it, as autovacuum would have on a live one. */
export const populate = (
  options: PopulationOptions
): Effect.Effect<PopulationCounts, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const total = options.activeMentors + Math.floor(options.activeMentors / 10)

    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* skipForeignKeyChecks(sql)
        yield* insertOrganisations(sql)
        yield* insertMentors(sql, options, total)
        yield* insertActivities(sql, options, total)
        yield* insertTokens(sql, total)
        yield* insertHistory(sql, options, total)
      })
    )

    yield* sql.unsafe("vacuum analyze")
    return yield* countRows(sql)
  })
