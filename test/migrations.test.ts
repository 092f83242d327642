import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { applyMigrations, migrate, readMigrationFiles } from "../src/services/Migrations.ts"
import { describeEachDatabase, rolledBack } from "./support/databases.ts"

const tables = [
  "chapters",
  "mentor_activities",
  "organisations",
  "peer_mentors",
  "push_receipts",
  "push_tokens",
  "scenario_evaluation_config",
  "scenario_notifications",
  "scheduler_runs"
]

/** The database API the edge function and the CLI call, by exact signature. */
const schedulerFunctions = [
  "public.scheduler_active_page(uuid, uuid, integer)",
  "public.scheduler_count_active(uuid, uuid)",
  "public.scheduler_evaluate(uuid[], timestamptz, text[])",
  "public.scheduler_claim(uuid, jsonb)",
  "public.scheduler_record_dispatch(uuid, jsonb)",
  "public.scheduler_open_run(uuid, timestamptz, text, integer)",
  "public.scheduler_renew_run(uuid)",
  "public.scheduler_record_coverage(jsonb, timestamptz)",
  "public.scheduler_finish_run(uuid, timestamptz, text, jsonb, uuid)",
  "public.scheduler_mark_sending(uuid, uuid[])",
  "public.scheduler_reclaim(uuid, integer, integer, integer)",
  "public.scheduler_record_tickets(jsonb)",
  "public.scheduler_due_tickets(integer, integer)",
  "public.scheduler_settle_tickets(text[], bigint[])"
]

const sqlStateOf = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "cause" in error
    ? (error.cause as { readonly code?: unknown } | undefined)?.code
    : undefined

describeEachDatabase("migrations", (it) => {
  it.effect("records every migration file as applied", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const files = yield* readMigrationFiles()

      const rows = yield* sql<{ version: string; name: string }>`
        select version, name from supabase_migrations.schema_migrations order by version`

      assert.deepStrictEqual(
        rows.map((row) => [row.version, row.name]),
        files.map((file) => [file.version, file.name])
      )
      assert.isAtLeast(files.length, 3)
    })
  )

  it.effect("applies nothing when run again", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      const applied = yield* migrate
      const rows = yield* sql<{ count: string }>`select count(*) as count from supabase_migrations.schema_migrations`

      assert.deepStrictEqual(applied, [])
      assert.strictEqual(Number(rows[0].count), (yield* readMigrationFiles()).length)
    })
  )

  it.effect("leaves neither changes nor a record behind when a migration fails", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const broken = {
        version: "99990101000000",
        name: "broken",
        sql: "create table public.half_done (); select 1 / 0;"
      }

      const error = yield* Effect.flip(applyMigrations([broken]))
      const table = yield* sql<{ exists: boolean }>`select to_regclass('public.half_done') is not null as exists`
      const record = yield* sql`select 1 from supabase_migrations.schema_migrations where version = ${broken.version}`

      assert.strictEqual(error._tag, "SqlError")
      assert.isFalse(table[0].exists)
      assert.strictEqual(record.length, 0)
    })
  )

  it.effect("creates the contract's tables with row level security enabled on each", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      const rows = yield* sql<{ relname: string; relrowsecurity: boolean }>`
        select c.relname, c.relrowsecurity
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'r'
        order by c.relname`

      assert.deepStrictEqual(
        rows.map((row) => row.relname),
        tables
      )
      assert.deepStrictEqual(
        rows.filter((row) => !row.relrowsecurity).map((row) => row.relname),
        []
      )
    })
  )

  it.effect("lets service_role, and neither anon nor authenticated, execute the scheduler functions", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      const rows = yield* sql<{ signature: string; anon: boolean; authenticated: boolean; service_role: boolean }>`
        select
          p.oid::regprocedure::text as signature,
          has_function_privilege('anon', p.oid, 'execute') as anon,
          has_function_privilege('authenticated', p.oid, 'execute') as authenticated,
          has_function_privilege('service_role', p.oid, 'execute') as service_role
        from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.proname like 'scheduler%'`
      const expected = yield* sql<{ signature: string }>`
        select to_regprocedure(s)::text as signature from unnest(${schedulerFunctions}::text[]) as s`

      assert.deepStrictEqual(
        expected.filter((row) => !rows.some((found) => found.signature === row.signature)),
        []
      )
      for (const row of rows) {
        assert.deepStrictEqual(
          [row.signature, row.anon, row.authenticated, row.service_role],
          [row.signature, false, false, true]
        )
      }
    })
  )

  it.effect("refuses anon a call that service_role may make", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient

        yield* sql`set local role anon`
        // The failed call aborts only its own savepoint, so the transaction can go on.
        const refused = yield* Effect.flip(sql.withTransaction(sql`select public.scheduler_count_active(null, null)`))
        yield* sql`reset role`
        yield* sql`set local role service_role`
        const allowed = yield* sql<{ count: string }>`select public.scheduler_count_active(null, null) as count`

        assert.strictEqual(sqlStateOf(refused), "42501")
        assert.strictEqual(Number(allowed[0].count), 0)
      })
    )
  )

  it.effect("keeps an auth.uid() that already exists, as Supabase's own", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [compat] = yield* readMigrationFiles()

        yield* sql`create or replace function auth.uid() returns uuid language sql as $$
          select '00000000-0000-4000-8000-000000000001'::uuid $$`
        yield* sql.unsafe(compat.sql).unprepared
        const rows = yield* sql<{ uid: string }>`select auth.uid()::text as uid`

        assert.strictEqual(compat.name, "supabase_compat")
        assert.strictEqual(rows[0].uid, "00000000-0000-4000-8000-000000000001")
      })
    )
  )

  it.effect("reads the caller's user id from the JWT claims in auth.uid()", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const claims = JSON.stringify({ sub: "00000000-0000-4000-8000-000000000002", role: "authenticated" })

        yield* sql`select set_config('request.jwt.claims', ${claims}, true)`
        const rows = yield* sql<{ uid: string }>`select auth.uid()::text as uid`

        assert.strictEqual(rows[0].uid, "00000000-0000-4000-8000-000000000002")
      })
    )
  )
})
