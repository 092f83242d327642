-- The run lock, and what each run records about what it covered.
--
-- Cron fires twice, a retried trigger arrives while the first run still goes: overlapping runs are expected. The
-- claim's unique keys already make them safe; the lock makes them rare, so that one run does the work and the others
-- stand down instead of evaluating every mentor again only to find each notification claimed.
--
-- The lock is a lease on the run's own row, not a session advisory lock: supabase-js .rpc runs every call in its own
-- transaction on a pooled connection, so a session lock would be released, or left in someone else's session,
-- between two calls of the same run. A run holds the lock while its row is 'running' and its heartbeat is recent. It
-- renews the heartbeat while it works; a run that crashed or was killed stops renewing and loses the lock once the
-- lease has passed, without anyone having to clean up after it.

alter table public.scheduler_runs add column heartbeat_at timestamptz;

-- The holder lookup when a run opens: only running rows are read.
create index scheduler_runs_running_idx on public.scheduler_runs (started_at) where outcome = 'running';

-- The return type changes, so the function is replaced rather than redefined.
drop function public.scheduler_open_run(uuid, timestamptz);

-- Opens a run under an overlap policy and answers where to resume.
--
-- First, runs still 'running' whose heartbeat is older than p_lease_seconds are closed as 'failed', with
-- stats {"lease_expired": true, "closed_by": <this run>}: they crashed or were killed, and their row would otherwise
-- say 'running' for ever. Their ids are answered in `abandoned`. (A run that was only slow and is still alive
-- overwrites this with its real outcome when it finishes.)
--
-- Then, under p_overlap 'skip', when another run still holds the lock, this run is recorded as 'skipped' with
-- stats {"skipped_by": <holder>} and the holder is answered in `locked_by`; the caller must then do nothing. Under
-- 'allow' (and when no run holds the lock) the run is recorded as 'running' with a fresh heartbeat, and resume_cursor
-- is the resume_cursor of the latest earlier run that finished completed or partial, when that run was partial.
-- Failed, skipped and unfinished runs are passed over, so a crash does not lose the place a partial run recorded.
--
-- Openers take turns on a transaction advisory lock, so two runs opening at the same moment cannot both find the
-- lock free; each statement after it reads what the openers before committed. The advisory lock lasts only this
-- call, which is why it fits supabase-js as well as a direct connection.
create function public.scheduler_open_run(
  p_invocation_id uuid,
  p_started_at timestamptz,
  p_overlap text default 'skip',
  p_lease_seconds integer default 600
)
returns table (resume_cursor uuid, locked_by uuid, abandoned uuid[])
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_expired_before timestamptz := pg_catalog.now() - pg_catalog.make_interval(secs => p_lease_seconds);
  v_abandoned uuid[];
  v_holder uuid;
begin
  if p_overlap is null or p_overlap not in ('skip', 'allow') then
    raise exception 'unknown overlap policy: %', p_overlap using errcode = '22023';
  end if;

  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('public.scheduler_runs'));

  with closed as (
    update public.scheduler_runs as r
    set outcome = 'failed',
      stats = coalesce(r.stats, '{}'::jsonb)
        || pg_catalog.jsonb_build_object('lease_expired', true, 'closed_by', p_invocation_id)
    where r.outcome = 'running'
      and r.invocation_id <> p_invocation_id
      and (r.heartbeat_at is null or r.heartbeat_at < v_expired_before)
    returning r.invocation_id
  )
  select coalesce(pg_catalog.array_agg(closed.invocation_id), '{}'::uuid[]) into v_abandoned from closed;

  if p_overlap = 'skip' then
    select r.invocation_id into v_holder
    from public.scheduler_runs as r
    where r.outcome = 'running' and r.invocation_id <> p_invocation_id
    order by r.started_at
    limit 1;
  end if;

  if v_holder is not null then
    insert into public.scheduler_runs (invocation_id, started_at, outcome, stats)
    values (p_invocation_id, p_started_at, 'skipped', pg_catalog.jsonb_build_object('skipped_by', v_holder));

    return query select null::uuid, v_holder, v_abandoned;
    return;
  end if;

  insert into public.scheduler_runs (invocation_id, started_at, outcome, heartbeat_at)
  values (p_invocation_id, p_started_at, 'running', pg_catalog.now());

  return query
  select
    (
      select case when r.outcome = 'partial' then r.resume_cursor end
      from public.scheduler_runs as r
      where r.outcome in ('completed', 'partial') and r.started_at < p_started_at
      order by r.started_at desc
      limit 1
    ),
    null::uuid,
    v_abandoned;
end
$$;

-- Renews a running run's heartbeat. Answers false when the row is no longer 'running': another run found the lease
-- expired and closed it, so the lock is lost and other runs may be working at the same time.
create function public.scheduler_renew_run(p_invocation_id uuid)
returns boolean
language sql
volatile
security invoker
set search_path = ''
as $$
  with renewed as (
    update public.scheduler_runs as r
    set heartbeat_at = pg_catalog.now()
    where r.invocation_id = p_invocation_id and r.outcome = 'running'
    returning r.invocation_id
  )
  select exists (select from renewed)
$$;

-- Records, per organisation and scenario, how many mentors a run judged that scenario for, and when:
-- scenario_evaluation_config.last_evaluated_count and last_evaluated_at. p_coverage is a JSON array of
-- {organisation_id, scenario_type, evaluated}; entries for the same organisation and scenario are added up.
--
-- Only enabled scenarios are written: a disabled one was not evaluated, so it keeps what its last evaluation left.
-- An organisation without a row for the scenario gets one holding only these two columns; enabled, cooldown_days and
-- params are left at their defaults (true, null, null), which the evaluation reads exactly as a missing row.
-- Organisations deleted since the run read them are left out. Answers how many rows it wrote.
create function public.scheduler_record_coverage(p_coverage jsonb, p_evaluated_at timestamptz)
returns integer
language sql
volatile
security invoker
set search_path = ''
as $$
  with
  coverage as (
    select c.organisation_id, c.scenario_type, pg_catalog.sum(c.evaluated)::integer as evaluated
    from pg_catalog.jsonb_to_recordset(p_coverage) as c (organisation_id uuid, scenario_type text, evaluated integer)
    join public.organisations as o on o.id = c.organisation_id
    group by c.organisation_id, c.scenario_type
  ),
  written as (
    insert into public.scenario_evaluation_config as e (
      organisation_id, scenario_type, last_evaluated_count, last_evaluated_at
    )
    select c.organisation_id, c.scenario_type, c.evaluated, p_evaluated_at
    from coverage as c
    left join public.scenario_evaluation_config as existing
      on existing.organisation_id = c.organisation_id and existing.scenario_type = c.scenario_type
    where coalesce(existing.enabled, true)
    on conflict (organisation_id, scenario_type) do update
    set last_evaluated_count = excluded.last_evaluated_count, last_evaluated_at = excluded.last_evaluated_at
    returning 1
  )
  select pg_catalog.count(*)::integer from written
$$;

revoke execute on function
  public.scheduler_open_run(uuid, timestamptz, text, integer),
  public.scheduler_renew_run(uuid),
  public.scheduler_record_coverage(jsonb, timestamptz)
from public, anon, authenticated;

grant execute on function
  public.scheduler_open_run(uuid, timestamptz, text, integer),
  public.scheduler_renew_run(uuid),
  public.scheduler_record_coverage(jsonb, timestamptz)
to service_role;
