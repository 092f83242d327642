import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { readMigrationFiles } from "../src/services/Migrations.ts"
import { describeEachDatabase, rolledBack } from "./support/databases.ts"

/**
 * The pg_cron schedule migration. Neither PGlite nor the test server has pg_cron, pg_net or Vault, so
 * there it must change nothing. Where they exist it must create a job that posts to the function with
 * the URL and secret read from Vault: checked with stand-ins for the three (same schemas, names and
 * signatures), with the migration applied a second time and the job's command run once.
 */

const scheduleMigration = Effect.map(readMigrationFiles(), (files) => {
  const file = files.find((candidate) => candidate.name === "schedule_with_pg_cron")
  if (file === undefined) throw new Error("the schedule migration is missing")
  return file
})

const standIns = `
  create schema cron;
  create table cron.job (jobname text primary key, schedule text not null, command text not null);
  create function cron.schedule(job_name text, schedule text, command text) returns bigint language sql as $$
    insert into cron.job values (job_name, schedule, command)
    on conflict (jobname) do update set schedule = excluded.schedule, command = excluded.command
    returning 1::bigint
  $$;

  create schema net;
  create table net.requests (url text, body jsonb, headers jsonb, timeout_milliseconds integer);
  create function net.http_post(
    url text, body jsonb default '{}', params jsonb default '{}', headers jsonb default '{}',
    timeout_milliseconds integer default 5000
  ) returns bigint language sql as $$
    insert into net.requests values (url, body, headers, timeout_milliseconds) returning 1::bigint
  $$;

  create schema vault;
  create table vault.secrets (name text primary key, secret text not null);
  create view vault.decrypted_secrets as select name, secret as decrypted_secret from vault.secrets;
  insert into vault.secrets values
    ('project_url', 'https://project-ref.supabase.co'),
    ('scheduler_cron_secret', 'cron-secret-from-vault');
`

describeEachDatabase("the pg_cron schedule", (it) => {
  it.effect("is skipped where pg_cron, pg_net and Vault are missing, and the migration still counts as applied", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const migration = yield* scheduleMigration

      const [state] = yield* sql<{ cron: boolean; applied: boolean }>`
        select
          to_regnamespace('cron') is not null as cron,
          exists (select from supabase_migrations.schema_migrations where version = ${migration.version}) as applied`

      assert.deepStrictEqual(state, { cron: false, applied: true })
    })
  )

  it.effect("posts to the function every 15 minutes with the URL and the secret it reads from Vault", () =>
    rolledBack(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const migration = yield* scheduleMigration

        yield* sql.unsafe(standIns).unprepared
        yield* sql.unsafe(migration.sql).unprepared
        yield* sql.unsafe(migration.sql).unprepared
        const jobs = yield* sql<{ jobname: string; schedule: string; command: string }>`select * from cron.job`
        yield* sql.unsafe(jobs[0]?.command ?? "select 1").unprepared
        const requests = yield* sql<{ url: string; body: unknown; headers: Record<string, string> }>`
          select url, body, headers from net.requests`

        assert.deepStrictEqual(
          jobs.map((job) => [job.jobname, job.schedule]),
          [["scenario-scheduler", "*/15 * * * *"]]
        )
        assert.notInclude(jobs[0]?.command ?? "", "cron-secret-from-vault")
        assert.deepStrictEqual(requests, [
          {
            url: "https://project-ref.supabase.co/functions/v1/scenario-scheduler",
            body: {},
            headers: { "Content-Type": "application/json", Authorization: "Bearer cron-secret-from-vault" }
          }
        ])
      })
    )
  )
})
