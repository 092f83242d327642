import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { assert, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { describeServer, postgresLayer, rolledBack } from "./support/databases.ts"

/**
 * What Supabase's Data API lets anyone but the scheduler see, on the server: a signed-in mentor
 * (`authenticated` with their id in the JWT claims) reads their own notifications and push tokens and
 * nothing else; `anon` reads nothing; neither may run the scheduler. Every test runs in a transaction
 * that is rolled back.
 */

const tables = [
  "organisations",
  "chapters",
  "peer_mentors",
  "mentor_activities",
  "push_tokens",
  "push_receipts",
  "scenario_evaluation_config",
  "scenario_notifications",
  "scheduler_runs"
]

const sqlStateOf = (error: SqlError): unknown => (error.cause as { readonly code?: unknown } | undefined)?.code

/** Two mentors of one organisation, each with a push token and a notification, and a run and a config row. */
const fixture = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [org] = yield* sql<{
    id: string
  }>`insert into organisations (name, timezone) values ('Org', 'Europe/Oslo') returning id`
  const orgId = org?.id ?? ""
  const mentors = [randomUUID(), randomUUID()] as const

  for (const [index, userId] of mentors.entries()) {
    yield* sql`insert into peer_mentors (user_id, organisation_id, full_name, email) values
      (${userId}, ${orgId}, ${`Mentor ${index}`}, ${`mentor${index}@example.org`})`
    yield* sql`insert into push_tokens (user_id, token, platform) values (${userId}, ${`token-${userId}`}, 'expo')`
    yield* sql`insert into mentor_activities (user_id, activity_date, kind) values (${userId}, '2026-12-01', 'session')`
    yield* sql`insert into scenario_notifications
      (user_id, organisation_id, scenario_type, evaluation_date, cooldown_window_start, idempotency_key)
      values (${userId}, ${orgId}, 'inactivity', '2026-12-04', '2026-12-03', ${`${userId}:inactivity:2026-12-04`})`
    yield* sql`insert into push_receipts (ticket_id, token_id, notification_id)
      select ${`ticket-${userId}`}, t.id, n.id from push_tokens as t join scenario_notifications as n using (user_id)
      where t.user_id = ${userId}`
  }
  yield* sql`insert into scenario_evaluation_config (organisation_id, scenario_type, cooldown_days) values (${orgId}, 'expiry', 3)`
  yield* sql`insert into scheduler_runs (invocation_id, outcome) values (${randomUUID()}, 'completed')`

  return { own: mentors[0], other: mentors[1] }
})

/** Acts as a role of the Data API for the rest of the transaction, with the JWT claims PostgREST would set. */
const actAs = (role: "anon" | "authenticated", sub?: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const claims = JSON.stringify(sub === undefined ? { role } : { role, sub })
    yield* sql`select set_config('request.jwt.claims', ${claims}, true)`
    yield* sql.unsafe(`set local role ${role}`)
  })

/** The rows of a table the current role can see; a refused SELECT sees none. Runs in a savepoint. */
const visible = (table: string, where = "true") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql
      .withTransaction(sql.unsafe<{ user_id?: string }>(`select * from public.${table} where ${where}`))
      .pipe(
        Effect.catchIf(
          (error) => sqlStateOf(error) === "42501",
          () => Effect.succeed([])
        )
      )
  })

/** The SQLSTATE of a statement that must fail; it runs in a savepoint so the transaction goes on. */
const refusal = (statement: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const error = yield* Effect.flip(sql.withTransaction(sql.unsafe(statement)))
    return sqlStateOf(error)
  })

/** How many rows a write changed; a refused write (privileges or a policy) changes none. Runs in a savepoint. */
const changed = (statement: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql
      .withTransaction(
        sql.unsafe(`with changed as (${statement} returning 1) select count(*)::int as count from changed`)
      )
      .pipe(
        Effect.map((rows) => Number((rows[0] as { count?: number } | undefined)?.count ?? 0)),
        Effect.catchIf(
          (error) => sqlStateOf(error) === "42501",
          () => Effect.succeed(0)
        )
      )
  })

const schedulerCalls = [
  "select public.scheduler_count_active(null, null)",
  "select * from public.scheduler_active_page(null, null, 10)",
  "select * from public.scheduler_evaluate('{}'::uuid[], now(), '{inactivity}'::text[])",
  "select * from public.scheduler_claim(gen_random_uuid(), '[]'::jsonb)",
  "select public.scheduler_record_dispatch(gen_random_uuid(), '[]'::jsonb)",
  "select public.scheduler_record_tickets('[]'::jsonb)",
  "select * from public.scheduler_due_tickets(0, 10)",
  "select public.scheduler_settle_tickets('{}'::text[], '{}'::bigint[])"
]

describeServer("row level security and privileges", () => {
  layer(postgresLayer, { timeout: Duration.minutes(1), excludeTestServices: true })((it) => {
    // Supabase grants every table to anon and authenticated by default: the policies must hold on their own too.
    for (const grants of ["as migrated", "with Supabase's default grants"] as const) {
      const setUp = Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const mentors = yield* fixture
        if (grants !== "as migrated") {
          yield* sql`grant all on all tables in schema public to anon, authenticated`
        }
        return mentors
      })

      it.effect(`lets a signed-in mentor read their own notifications and push tokens only, ${grants}`, () =>
        rolledBack(
          Effect.gen(function* () {
            const { own, other } = yield* setUp
            yield* actAs("authenticated", own)

            const notifications = yield* visible("scenario_notifications")
            const tokens = yield* visible("push_tokens")
            const othersNotifications = yield* visible("scenario_notifications", `user_id = '${other}'`)
            const othersTokens = yield* visible("push_tokens", `user_id = '${other}'`)

            assert.deepStrictEqual(
              notifications.map((row) => row.user_id),
              [own]
            )
            assert.deepStrictEqual(
              tokens.map((row) => row.user_id),
              [own]
            )
            assert.deepStrictEqual([othersNotifications.length, othersTokens.length], [0, 0])
          })
        )
      )

      it.effect(`shows a signed-in mentor nothing of any other table, their own profile included, ${grants}`, () =>
        rolledBack(
          Effect.gen(function* () {
            const { own } = yield* setUp
            yield* actAs("authenticated", own)

            for (const table of tables.filter((name) => name !== "scenario_notifications" && name !== "push_tokens")) {
              assert.deepStrictEqual([table, (yield* visible(table)).length], [table, 0])
            }
          })
        )
      )

      it.effect(`lets a signed-in mentor change nothing, not even their own rows, ${grants}`, () =>
        rolledBack(
          Effect.gen(function* () {
            const { own } = yield* setUp
            yield* actAs("authenticated", own)

            assert.strictEqual(
              yield* changed(`update public.push_tokens set revoked_at = now() where user_id = '${own}'`),
              0
            )
            assert.strictEqual(yield* changed(`delete from public.scenario_notifications where user_id = '${own}'`), 0)
            assert.strictEqual(
              yield* changed(`insert into public.push_tokens (user_id, token, platform) values ('${own}', 'x', 'fcm')`),
              0
            )
          })
        )
      )

      it.effect(`shows anon nothing at all, ${grants}`, () =>
        rolledBack(
          Effect.gen(function* () {
            yield* setUp
            yield* actAs("anon")

            for (const table of tables) {
              assert.deepStrictEqual([table, (yield* visible(table)).length], [table, 0])
            }
          })
        )
      )
    }

    it.effect("refuses the scheduler's functions to a signed-in mentor and to anon", () =>
      rolledBack(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const { own } = yield* fixture

          yield* actAs("authenticated", own)
          for (const call of schedulerCalls) {
            assert.deepStrictEqual([call, yield* refusal(call)], [call, "42501"])
          }
          yield* sql`reset role`
          yield* actAs("anon")
          for (const call of schedulerCalls) {
            assert.deepStrictEqual([call, yield* refusal(call)], [call, "42501"])
          }
        })
      )
    )

    it.effect("pins the search_path of every scheduler function, of auth.uid() and of any SECURITY DEFINER one", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient

        const unpinned = yield* sql<{ signature: string }>`
          select p.oid::regprocedure::text as signature
          from pg_proc as p
          join pg_namespace as n on n.oid = p.pronamespace
          where (
              (n.nspname = 'public' and (p.proname like 'scheduler%' or p.prosecdef))
              or (n.nspname = 'auth' and (p.proname = 'uid' or p.prosecdef))
            )
            and not exists (select from unnest(p.proconfig) as c (setting) where c.setting like 'search_path=%')`

        assert.deepStrictEqual(unpinned, [])
      })
    )

    it.effect("cannot be tricked by a hostile search_path shadowing the tables and functions it uses", () =>
      rolledBack(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const { own, other } = yield* fixture
          const impostor = randomUUID()

          yield* sql.unsafe(`
            create schema hostile;
            create table hostile.peer_mentors (user_id uuid, status text, organisation_id uuid);
            insert into hostile.peer_mentors values ('${impostor}', 'active', null);
            create function hostile.current_setting(text, boolean) returns text language sql
              as $$ select '{"sub": "${other}", "role": "authenticated"}' $$;
            grant usage on schema hostile to public;
            grant select on hostile.peer_mentors to public;
          `)

          yield* sql.unsafe("set local role service_role")
          yield* sql.unsafe("set local search_path = hostile, pg_catalog, public")
          const [count] = yield* sql<{ count: string }>`select public.scheduler_count_active(null, null) as count`
          const page = yield* sql<{
            user_id: string
          }>`select user_id::text from public.scheduler_active_page(null, null, 10)`

          yield* sql`reset role`
          yield* actAs("authenticated", own)
          yield* sql.unsafe("set local search_path = hostile, pg_catalog, public")
          const [uid] = yield* sql<{ uid: string }>`select auth.uid()::text as uid`
          const notifications = yield* visible("scenario_notifications")

          assert.strictEqual(Number(count?.count), 2)
          assert.deepStrictEqual(page.map((row) => row.user_id).sort(), [own, other].sort())
          assert.strictEqual(uid?.uid, own)
          assert.deepStrictEqual(
            notifications.map((row) => row.user_id),
            [own]
          )
        })
      )
    )
  })
})
