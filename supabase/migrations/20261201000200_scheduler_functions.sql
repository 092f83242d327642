-- The scheduler's database API. The edge function calls these through supabase-js .rpc (which passes arguments
-- by name, hence the p_ prefixes) and the CLI calls them with SQL, so both run the same evaluation and claim logic.
--
-- Every function is SECURITY INVOKER: it runs with the caller's rights, and only service_role (and the owner) may
-- call it. Every function pins an empty search_path and names each object with its schema, so that nothing a caller
-- puts on its search_path can stand in for a table or function used here.

-- Helpers ---------------------------------------------------------------------------------------------------------

-- Whether the time zone is a zone name Postgres knows. Asking Postgres to convert a time is the only test that accepts exactly
-- the names AT TIME ZONE accepts (pg_timezone_names misses abbreviations and differently cased names, and reading
-- that view means listing the whole zone database: some 20 ms per statement on Postgres 15 and PGlite, against a
-- millisecond or two for five zones checked here). scheduler_evaluate calls this once per distinct zone of a page.
create function public.scheduler_timezone_is_valid(p_timezone text)
returns boolean
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  -- Postgres also takes POSIX zone strings such as 'UTC+05:00' (read as five hours west). A zone name is letters,
  -- digits, '_', '+' and '-' in '/'-separated parts ('Europe/Oslo', 'Etc/GMT+1'): no ':', no spaces.
  if p_timezone !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' then
    return false;
  end if;
  perform pg_catalog.timezone(p_timezone, pg_catalog.now());
  return true;
exception
  when invalid_parameter_value or feature_not_supported then
    return false;
end
$$;

-- A whole number of at least p_min (and at most 3650) read from a scenario's params. A missing key (or JSON null) gives p_default;
-- anything else that is not such a number gives null, which the evaluation reports as invalid_scenario_config.
create function public.scheduler_param_integer(p_params jsonb, p_key text, p_default integer, p_min integer)
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when p_params is null or p_params -> p_key is null or pg_catalog.jsonb_typeof(p_params -> p_key) = 'null' then
      p_default
    when pg_catalog.jsonb_typeof(p_params -> p_key) = 'number' then
      case
        -- Past ten years a number of days is a mistake, and date arithmetic near the integer limit overflows.
        when (p_params -> p_key)::numeric between p_min and 3650
          and (p_params -> p_key)::numeric = pg_catalog.trunc((p_params -> p_key)::numeric)
        then ((p_params -> p_key)::numeric)::integer
      end
  end
$$;

-- The milestone thresholds read from a scenario's params: an array of whole numbers of at least 1. A missing key
-- gives p_default; anything else gives null (invalid_scenario_config).
create function public.scheduler_param_thresholds(p_params jsonb, p_default integer[])
returns integer[]
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when p_params is null or p_params -> 'thresholds' is null
      or pg_catalog.jsonb_typeof(p_params -> 'thresholds') = 'null' then
      p_default
    when pg_catalog.jsonb_typeof(p_params -> 'thresholds') = 'array' then (
      select case when pg_catalog.bool_and(t.value is not null) is not false then
        coalesce(pg_catalog.array_agg(t.value::integer order by t.value), '{}'::integer[])
      end
      from (
        select case
          when pg_catalog.jsonb_typeof(e.element) = 'number' then
            case
              when e.element::numeric between 1 and 2147483647
                and e.element::numeric = pg_catalog.trunc(e.element::numeric)
              then e.element::numeric
            end
        end as value
        from pg_catalog.jsonb_array_elements(p_params -> 'thresholds') as e (element)
      ) as t
    )
  end
$$;

-- Paging -----------------------------------------------------------------------------------------------------------

-- The bounds are written so that the index on active mentors' user_id can seek to them: a null bound becomes the
-- smallest or largest uuid rather than an OR, which would make Postgres read the index from its start. The nil
-- uuid itself is excluded from "after" pages by the IS DISTINCT FROM filter.
create function public.scheduler_active_page(p_after uuid, p_until uuid, p_limit integer)
returns table (user_id uuid)
language sql
stable
security invoker
set search_path = ''
as $$
  select m.user_id
  from public.peer_mentors as m
  where m.status = 'active'
    and m.user_id >= coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid)
    and m.user_id is distinct from p_after
    and m.user_id <= coalesce(p_until, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
  order by m.user_id
  limit p_limit
$$;

create function public.scheduler_count_active(p_after uuid, p_until uuid)
returns bigint
language sql
stable
security invoker
set search_path = ''
as $$
  select pg_catalog.count(*)
  from public.peer_mentors as m
  where m.status = 'active'
    and m.user_id >= coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid)
    and m.user_id is distinct from p_after
    and m.user_id <= coalesce(p_until, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
$$;

-- Evaluation -------------------------------------------------------------------------------------------------------

-- Judges every requested scenario for a page of mentors as of p_now, in one statement. Rows, per mentor that is
-- still active (others in p_user_ids get none):
--   status 'candidate'   a scenario is due and may be notified (reason null);
--   status 'suppressed'  a scenario is due but is not sent: reason 'opted_out', else 'no_push_token', else 'cooldown';
--   status 'error'       reason 'invalid_timezone' (one row for the mentor, scenario_type null), or
--                        'invalid_scenario_config' (one row per unusable enabled scenario, scenario_type set);
--   status 'none'        the mentor has no other row: nothing is due.
--
-- Dates are calendar dates in the organisation's zone: evaluation_date is p_now's date there, and activities dated
-- after it are not counted (a run for a past p_now judges that day). Defaults, used for a missing config row and
-- for keys missing from params: inactivity {"inactivity_days": 14}, cooldown 7; milestone
-- {"thresholds": [10, 25, 50, 100, 250]}, cooldown 1; expiry {"warning_days": 30}, cooldown 7.
--
-- idempotency_key is '<user_id>:<scenario_type>:<evaluation_date as YYYY-MM-DD>'. It is readable and unique by
-- construction, where a hash would only add a (tiny) chance of collision; it holds nothing but ids and a date.
-- cooldown_window_start is evaluation_date rounded down to a multiple of cooldown_days counted from 1970-01-01.
-- A due scenario is in cooldown when a notification of the same mentor and scenario has an evaluation_date less than
-- cooldown_days away, or the same cooldown window (the claim's unique key would refuse it anyway).
create function public.scheduler_evaluate(p_user_ids uuid[], p_now timestamptz, p_scenarios text[])
returns table (
  user_id uuid,
  organisation_id uuid,
  scenario_type text,
  evaluation_date date,
  cooldown_window_start date,
  idempotency_key text,
  payload jsonb,
  status text,
  reason text
)
language sql
stable
security invoker
set search_path = ''
as $$
  with
  defaults (scenario_type, cooldown_days) as (
    values ('inactivity', 7), ('milestone', 1), ('expiry', 7)
  ),
  -- Unknown scenario names are ignored: the caller validates its own input.
  requested as (
    select distinct d.scenario_type, d.cooldown_days
    from pg_catalog.unnest(p_scenarios) as s (scenario_type)
    join defaults as d on d.scenario_type = s.scenario_type
  ),
  page as (
    select m.user_id, m.organisation_id, m.created_at, m.certification_expires_at, m.notifications_enabled, o.timezone
    from public.peer_mentors as m
    join public.organisations as o on o.id = m.organisation_id
    where m.user_id = any (p_user_ids) and m.status = 'active'
  ),
  -- One check per distinct zone of the page, not per mentor.
  zones as (
    select z.timezone, public.scheduler_timezone_is_valid(z.timezone) as valid
    from (select distinct page.timezone from page) as z
  ),
  mentors as (
    select
      p.*,
      -- The CASE keeps an unknown zone from ever reaching AT TIME ZONE, which would fail the whole statement.
      case when z.valid then (p_now at time zone p.timezone)::date end as evaluation_date,
      case when z.valid then (p.created_at at time zone p.timezone)::date end as created_on
    from page as p
    join zones as z on z.timezone = p.timezone
    where z.valid
  ),
  settings as (
    select
      o.organisation_id,
      r.scenario_type,
      coalesce(c.cooldown_days, r.cooldown_days) as cooldown_days,
      public.scheduler_param_integer(c.params, 'inactivity_days', 14, 1) as inactivity_days,
      public.scheduler_param_thresholds(c.params, '{10,25,50,100,250}'::integer[]) as thresholds,
      public.scheduler_param_integer(c.params, 'warning_days', 30, 0) as warning_days,
      c.params is null or pg_catalog.jsonb_typeof(c.params) = 'object' as params_readable
    from (select distinct mentors.organisation_id from mentors) as o
    cross join requested as r
    left join public.scenario_evaluation_config as c
      on c.organisation_id = o.organisation_id and c.scenario_type = r.scenario_type
    where coalesce(c.enabled, true)
  ),
  -- Materialized: a handful of rows (one per organisation and scenario of the page), each with its parameters parsed
  -- by the scheduler_param_* helpers. Inlined into `judged`, the helpers would run for every mentor and scenario: with
  -- a pinned search_path they are never inlined themselves, so each is a full function call (35 ms against 11 ms for a
  -- page of 500 on 100,000 mentors, see docs/PERFORMANCE.md).
  checked as materialized (
    select
      s.*,
      s.params_readable and s.cooldown_days between 1 and 3650 and case s.scenario_type
        when 'inactivity' then s.inactivity_days is not null
        when 'milestone' then s.thresholds is not null
        when 'expiry' then s.warning_days is not null
      end as valid
    from settings as s
  ),
  activity as (
    select a.user_id, pg_catalog.max(a.activity_date) as last_activity_date, pg_catalog.count(*) as activity_count
    from mentors as m
    join public.mentor_activities as a on a.user_id = m.user_id and a.activity_date <= m.evaluation_date
    group by a.user_id
  ),
  notified_milestones as (
    select n.user_id, pg_catalog.max(
      case
        when pg_catalog.jsonb_typeof(n.payload -> 'threshold') = 'number' then (n.payload -> 'threshold')::numeric
      end
    ) as highest_threshold
    from mentors as m
    join public.scenario_notifications as n on n.user_id = m.user_id and n.scenario_type = 'milestone'
    group by n.user_id
  ),
  judged as (
    select
      m.user_id,
      m.organisation_id,
      m.evaluation_date,
      m.notifications_enabled,
      c.scenario_type,
      c.cooldown_days,
      c.valid,
      case when c.valid then
        case c.scenario_type
          when 'inactivity' then
            case when m.evaluation_date - coalesce(a.last_activity_date, m.created_on) >= c.inactivity_days then
              pg_catalog.jsonb_build_object(
                'last_activity_date', a.last_activity_date,
                'days_inactive', m.evaluation_date - coalesce(a.last_activity_date, m.created_on)
              )
            end
          when 'milestone' then
            case when milestone.threshold is not null then
              pg_catalog.jsonb_build_object('threshold', milestone.threshold, 'activity_count', a.activity_count)
            end
          when 'expiry' then
            case when m.certification_expires_at between m.evaluation_date and m.evaluation_date + c.warning_days then
              pg_catalog.jsonb_build_object(
                'expires_on', m.certification_expires_at,
                'days_left', m.certification_expires_at - m.evaluation_date
              )
            end
        end
      end as payload
    from mentors as m
    join checked as c on c.organisation_id = m.organisation_id
    left join activity as a on a.user_id = m.user_id
    left join notified_milestones as nm on nm.user_id = m.user_id
    -- The highest threshold reached that is above every threshold notified before.
    left join lateral (
      select pg_catalog.max(t.value) as threshold
      from pg_catalog.unnest(c.thresholds) as t (value)
      where c.scenario_type = 'milestone'
        and t.value <= coalesce(a.activity_count, 0)
        and t.value > coalesce(nm.highest_threshold, 0)
    ) as milestone on true
  ),
  due as (
    select
      j.*,
      date '1970-01-01' + ((j.evaluation_date - date '1970-01-01') / j.cooldown_days) * j.cooldown_days
        as cooldown_window_start,
      j.user_id::text || ':' || j.scenario_type || ':' || pg_catalog.to_char(j.evaluation_date, 'YYYY-MM-DD')
        as idempotency_key
    from judged as j
    where j.valid and j.payload is not null
  ),
  live_tokens as (
    select distinct t.user_id
    from due as d
    join public.push_tokens as t on t.user_id = d.user_id and t.revoked_at is null
  ),
  cooling as (
    select distinct d.user_id, d.scenario_type
    from due as d
    join public.scenario_notifications as n on n.user_id = d.user_id and n.scenario_type = d.scenario_type
    -- Within cooldown_days on either side: a notification dated ahead (a run given a later `now`) counts too.
    where (n.evaluation_date > d.evaluation_date - d.cooldown_days and n.evaluation_date < d.evaluation_date + d.cooldown_days)
      or n.cooldown_window_start = d.cooldown_window_start
  ),
  verdicts as (
    select
      d.user_id,
      d.organisation_id,
      d.scenario_type,
      d.evaluation_date,
      d.cooldown_window_start,
      d.idempotency_key,
      d.payload,
      case when reasons.reason is null then 'candidate' else 'suppressed' end as status,
      reasons.reason
    from due as d
    left join live_tokens as lt on lt.user_id = d.user_id
    left join cooling as cl on cl.user_id = d.user_id and cl.scenario_type = d.scenario_type
    cross join lateral (
      select case
        when not d.notifications_enabled then 'opted_out'
        when lt.user_id is null then 'no_push_token'
        when cl.user_id is not null then 'cooldown'
      end as reason
    ) as reasons
    union all
    select j.user_id, j.organisation_id, j.scenario_type, j.evaluation_date, null, null, null, 'error',
      'invalid_scenario_config'
    from judged as j
    where not j.valid
    union all
    select p.user_id, p.organisation_id, null, null, null, null, null, 'error', 'invalid_timezone'
    from page as p
    join zones as z on z.timezone = p.timezone
    where not z.valid
  )
  select
    v.user_id, v.organisation_id, v.scenario_type, v.evaluation_date, v.cooldown_window_start, v.idempotency_key,
    v.payload, v.status, v.reason
  from verdicts as v
  union all
  select m.user_id, m.organisation_id, null, m.evaluation_date, null, null, null, 'none', null
  from mentors as m
  where not exists (select from verdicts as v where v.user_id = m.user_id)
  order by 1, 3 nulls first
$$;

-- Claiming ---------------------------------------------------------------------------------------------------------

-- Inserts the candidates as pending notifications of this run and answers only those it inserted, each with the
-- mentor's live tokens. A candidate that collides with an existing notification on either unique key (the same
-- idempotency key, or the same mentor, scenario and cooldown window) is skipped, also when the collision is with
-- another candidate of the same batch, so concurrent or repeated runs never send twice.
-- Token ids are text because a bigint may not fit a JSON number.
-- A mentor's live push tokens as the program reads them: a JSON array of {id, token, platform}, empty when none.
create function public.scheduler_live_tokens(p_user_id uuid)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(
    pg_catalog.jsonb_agg(
      pg_catalog.jsonb_build_object('id', t.id::text, 'token', t.token, 'platform', t.platform) order by t.id
    ),
    '[]'::jsonb
  )
  from public.push_tokens as t
  where t.user_id = p_user_id and t.revoked_at is null
$$;

create function public.scheduler_claim(p_invocation_id uuid, p_candidates jsonb)
returns table (
  notification_id uuid,
  user_id uuid,
  scenario_type text,
  idempotency_key text,
  payload jsonb,
  tokens jsonb
)
language sql
volatile
security invoker
set search_path = ''
as $$
  with
  candidates as (
    select *
    from pg_catalog.jsonb_to_recordset(p_candidates) as c (
      user_id uuid,
      organisation_id uuid,
      scenario_type text,
      evaluation_date date,
      cooldown_window_start date,
      idempotency_key text,
      payload jsonb
    )
  ),
  inserted as (
    insert into public.scenario_notifications as n (
      user_id, organisation_id, scenario_type, evaluation_date, cooldown_window_start, idempotency_key, payload,
      status, attempts, invocation_id
    )
    select
      c.user_id, c.organisation_id, c.scenario_type, c.evaluation_date, c.cooldown_window_start, c.idempotency_key,
      coalesce(c.payload, '{}'::jsonb), 'pending', 0, p_invocation_id
    from candidates as c
    on conflict do nothing
    returning n.id, n.user_id, n.scenario_type, n.idempotency_key, n.payload
  )
  select
    i.id,
    i.user_id,
    i.scenario_type,
    i.idempotency_key,
    i.payload,
    public.scheduler_live_tokens(i.user_id)
  from inserted as i
  order by i.user_id, i.scenario_type
$$;

-- Records what happened to claimed notifications: status, one more attempt, the error type (null clears it) and,
-- once dispatched, when. Tokens the provider rejected for good are revoked, but only tokens of the notification's
-- own mentor, so a wrong id in a result cannot revoke someone else's device. Answers how many notifications it
-- updated.
create function public.scheduler_record_dispatch(p_invocation_id uuid, p_results jsonb)
returns integer
language sql
volatile
security invoker
set search_path = ''
as $$
  with
  results as (
    select *
    from pg_catalog.jsonb_to_recordset(p_results) as r (
      notification_id uuid,
      status text,
      error_type text,
      revoked_token_ids jsonb
    )
  ),
  updated as (
    update public.scenario_notifications as n
    set
      status = r.status,
      attempts = n.attempts + 1,
      last_error_type = r.error_type,
      dispatched_at = case when r.status = 'dispatched' then pg_catalog.now() else n.dispatched_at end
    from results as r
    -- Only the run that holds the claim records it, and only once: a run whose claim was taken over after its
    -- lease cannot overwrite what the new owner did.
    where n.id = r.notification_id and n.invocation_id = p_invocation_id and n.status in ('pending', 'deferred')
    returning n.id
  ),
  -- Ids that are not whole numbers cannot name a token; they are dropped rather than failing the whole batch.
  revoked_ids as (
    select n.user_id, case when x.token_id ~ '^[0-9]{1,18}$' then x.token_id::bigint end as token_id
    from results as r
    join updated as u on u.id = r.notification_id
    join public.scenario_notifications as n on n.id = r.notification_id
    cross join lateral pg_catalog.jsonb_array_elements_text(
      case when pg_catalog.jsonb_typeof(r.revoked_token_ids) = 'array' then r.revoked_token_ids else '[]'::jsonb end
    ) as x (token_id)
  ),
  revoked as (
    update public.push_tokens as t
    set revoked_at = pg_catalog.now()
    from revoked_ids as ri
    where t.id = ri.token_id and t.user_id = ri.user_id and t.revoked_at is null
    returning t.id
  )
  select pg_catalog.count(*)::integer from updated
$$;

-- Runs -------------------------------------------------------------------------------------------------------------

-- Opens a run and answers where to resume: the resume_cursor of the latest earlier run that finished completed or
-- partial, when that run was partial; null when it completed or there is none. Failed, skipped and unfinished
-- runs are passed over, so a crash does not lose the place the last partial run recorded.
create function public.scheduler_open_run(p_invocation_id uuid, p_started_at timestamptz)
returns table (resume_cursor uuid)
language sql
volatile
security invoker
set search_path = ''
as $$
  with opened as (
    insert into public.scheduler_runs (invocation_id, started_at, outcome)
    values (p_invocation_id, p_started_at, 'running')
    returning invocation_id
  )
  select (
    select case when r.outcome = 'partial' then r.resume_cursor end
    from public.scheduler_runs as r
    where r.outcome in ('completed', 'partial') and r.started_at < p_started_at
    order by r.started_at desc
    limit 1
  )
  from opened
$$;

-- Closes a run. It also writes a run that was never opened (its start then reads as its finish), because the run
-- record must be written whatever happened, including a failure to open it.
create function public.scheduler_finish_run(
  p_invocation_id uuid,
  p_finished_at timestamptz,
  p_outcome text,
  p_stats jsonb,
  p_resume_cursor uuid
)
returns void
language sql
volatile
security invoker
set search_path = ''
as $$
  insert into public.scheduler_runs as r (invocation_id, started_at, finished_at, outcome, stats, resume_cursor)
  values (p_invocation_id, p_finished_at, p_finished_at, p_outcome, p_stats, p_resume_cursor)
  on conflict (invocation_id) do update
  set finished_at = excluded.finished_at, outcome = excluded.outcome, stats = excluded.stats,
    resume_cursor = excluded.resume_cursor
$$;

-- Privileges -------------------------------------------------------------------------------------------------------

-- Supabase grants EXECUTE on new functions to anon and authenticated by default, and Postgres to PUBLIC: both are
-- taken back, so that only service_role (the edge function) and the owner (the CLI) can run the scheduler.
revoke execute on function
  public.scheduler_timezone_is_valid(text),
  public.scheduler_param_integer(jsonb, text, integer, integer),
  public.scheduler_param_thresholds(jsonb, integer[]),
  public.scheduler_live_tokens(uuid),
  public.scheduler_active_page(uuid, uuid, integer),
  public.scheduler_count_active(uuid, uuid),
  public.scheduler_evaluate(uuid[], timestamptz, text[]),
  public.scheduler_claim(uuid, jsonb),
  public.scheduler_record_dispatch(uuid, jsonb),
  public.scheduler_open_run(uuid, timestamptz),
  public.scheduler_finish_run(uuid, timestamptz, text, jsonb, uuid)
from public, anon, authenticated;

grant execute on function
  public.scheduler_timezone_is_valid(text),
  public.scheduler_param_integer(jsonb, text, integer, integer),
  public.scheduler_param_thresholds(jsonb, integer[]),
  public.scheduler_live_tokens(uuid),
  public.scheduler_active_page(uuid, uuid, integer),
  public.scheduler_count_active(uuid, uuid),
  public.scheduler_evaluate(uuid[], timestamptz, text[]),
  public.scheduler_claim(uuid, jsonb),
  public.scheduler_record_dispatch(uuid, jsonb),
  public.scheduler_open_run(uuid, timestamptz),
  public.scheduler_finish_run(uuid, timestamptz, text, jsonb, uuid)
to service_role;
