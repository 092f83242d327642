-- Performance of the scheduler's statements, measured with `npm run bench` (docs/PERFORMANCE.md).
--
-- Only what changes how fast things run is here; what the functions answer stays exactly as defined by the earlier
-- migrations. test/performance.test.ts checks that the definition below is the latest earlier one plus the change it
-- names, so that an edit to the rules made there cannot be undone here unnoticed.

-- scheduler_evaluate ----------------------------------------------------------------------------------------------

-- Unchanged but for one word: `checked` is materialized. It holds a row per organisation and scenario of the page (a
-- handful), each with its parameters parsed by the scheduler_param_* helpers. Referenced once, Postgres inlined it
-- into `judged`, where the helpers then ran for every mentor and scenario: being SQL functions with a pinned
-- search_path they are never inlined themselves, so each was a full function call. On 100,000 mentors a page of 500
-- took about 35 ms and takes about 11 ms.
create or replace function public.scheduler_evaluate(p_user_ids uuid[], p_now timestamptz, p_scenarios text[])
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
