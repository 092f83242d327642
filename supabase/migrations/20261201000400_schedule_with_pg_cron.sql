-- Schedules the Edge Function: every 15 minutes pg_cron has pg_net POST to
-- <project_url>/functions/v1/scenario-scheduler with `Authorization: Bearer <cron secret>`. The function answers at
-- once with 202 and runs in the background, so pg_net's short timeout is enough.
--
-- The project URL and the cron secret are read from Supabase Vault (vault.decrypted_secrets, secrets named
-- `project_url` and `scheduler_cron_secret`) each time the job runs, so neither is written into the job or into this
-- file. Create them once per project, with the secret equal to the function's SCHEDULER_CRON_SECRET (see README).
--
-- pg_cron and pg_net are enabled first where the server offers them, as Supabase does. Where pg_cron, pg_net or Vault
-- are missing (a plain Postgres server, PGlite) nothing is scheduled and a notice says so; the rest of the schema does
-- not depend on the schedule. Running the job again under the same name replaces its schedule and command.

do $$
declare
  wanted text;
begin
  foreach wanted in array array['pg_cron', 'pg_net']
  loop
    if exists (select from pg_catalog.pg_available_extensions where name = wanted)
      and not exists (select from pg_catalog.pg_extension where extname = wanted) then
      begin
        -- Supabase keeps extensions' objects out of public, in the extensions schema.
        if wanted = 'pg_net' and exists (select from pg_catalog.pg_namespace where nspname = 'extensions') then
          create extension pg_net with schema extensions;
        else
          execute format('create extension %I', wanted);
        end if;
      exception
        -- pg_cron refuses to load unless the server preloads it; such a server has no scheduler to offer.
        when others then
          raise notice 'scenario-scheduler: % is available but could not be enabled: %', wanted, sqlerrm;
      end;
    end if;
  end loop;
end
$$;

do $$
begin
  if not exists (
    select from pg_catalog.pg_proc as p join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
    where n.nspname = 'cron' and p.proname = 'schedule'
  ) or not exists (
    select from pg_catalog.pg_proc as p join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
    where n.nspname = 'net' and p.proname = 'http_post'
  ) or pg_catalog.to_regclass('vault.decrypted_secrets') is null then
    raise notice 'scenario-scheduler: pg_cron, pg_net or Supabase Vault is missing; the Edge Function is not scheduled';
    return;
  end if;

  perform cron.schedule(
    'scenario-scheduler',
    '*/15 * * * *',
    $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url')
        || '/functions/v1/scenario-scheduler',
      headers := pg_catalog.jsonb_build_object(
        'Content-Type', 'application/json',
        'Authorization', 'Bearer ' || (
          select decrypted_secret from vault.decrypted_secrets where name = 'scheduler_cron_secret'
        )
      ),
      body := '{}'::jsonb,
      timeout_milliseconds := 5000
    ) as request_id;
    $job$
  );
end
$$;
