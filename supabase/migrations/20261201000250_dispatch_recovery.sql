-- Recovery of notifications a run claimed but did not finish sending.
--
-- A run claims a notification (status 'pending'), marks it just before sending (dispatch_started_at) and records the
-- result. A run that dies in between leaves one of two kinds of rows behind:
--   * pending, never marked: certainly not sent, so a later run may send it;
--   * pending and marked: the provider may or may not have delivered it. Sending it again blindly could notify the
--     mentor twice, so the later run is told the outcome is unknown and decides with the provider.
-- A 'deferred' row was tried and is known not to be delivered (a transient provider failure): a later run retries it.

-- When the owning run (invocation_id) took the notification: a run that crashed loses it after a lease.
alter table public.scenario_notifications add column if not exists claimed_at timestamptz not null default now();

-- Set just before the send; a pending row with this set and no result is one whose outcome is unknown.
alter table public.scenario_notifications add column if not exists dispatch_started_at timestamptz;

-- Marks this run's claimed notifications as about to be sent. Answers how many it marked.
create function public.scheduler_mark_sending(p_invocation_id uuid, p_notification_ids uuid[])
returns integer
language sql
volatile
security invoker
set search_path = ''
as $$
  with marked as (
    update public.scenario_notifications as n
    set dispatch_started_at = pg_catalog.now()
    where n.id = any (p_notification_ids) and n.invocation_id = p_invocation_id and n.status = 'pending'
    returning n.id
  )
  select pg_catalog.count(*)::integer from marked
$$;

-- Takes over notifications left by other runs: deferred ones once the run that deferred them has ended, and pending
-- ones whose claim is older than the lease (their run is gone). Concurrent runs never take the same row (skip locked). Rows that have used up their attempts are
-- marked failed instead. Answers what it took, each with the mentor's live tokens and whether the earlier send's
-- outcome is unknown.
create function public.scheduler_reclaim(
  p_invocation_id uuid,
  p_lease_seconds integer,
  p_limit integer,
  p_max_attempts integer
)
returns table (
  notification_id uuid,
  user_id uuid,
  scenario_type text,
  idempotency_key text,
  payload jsonb,
  tokens jsonb,
  outcome_unknown boolean
)
language sql
volatile
security invoker
set search_path = ''
as $$
  with
  abandoned as (
    -- Deferred rows once their run has ended; pending rows once their claim is older than the lease. Whether the
    -- earlier send's outcome is unknown is read before the takeover resets the row.
    select n.id, (n.status = 'pending' and n.dispatch_started_at is not null) as outcome_unknown
    from public.scenario_notifications as n
    where n.status in ('pending', 'deferred')
      and n.invocation_id is distinct from p_invocation_id
      and (
        n.claimed_at < pg_catalog.now() - pg_catalog.make_interval(secs => p_lease_seconds)
        or (
          n.status = 'deferred'
          and not exists (
            select from public.scheduler_runs as r where r.invocation_id = n.invocation_id and r.outcome = 'running'
          )
        )
      )
    order by n.created_at
    limit p_limit
    for update of n skip locked
  ),
  exhausted as (
    update public.scenario_notifications as n
    set status = 'failed'
    from abandoned as a
    where n.id = a.id and n.status = 'deferred' and n.attempts >= p_max_attempts
    returning n.id
  ),
  -- Taken over as pending and not yet being sent, so that this run's own crash is recognised like any other.
  taken as (
    update public.scenario_notifications as n
    set invocation_id = p_invocation_id, claimed_at = pg_catalog.now(), status = 'pending', dispatch_started_at = null
    from abandoned as a
    where n.id = a.id and not (n.status = 'deferred' and n.attempts >= p_max_attempts)
    returning n.id, n.user_id, n.scenario_type, n.idempotency_key, n.payload, a.outcome_unknown
  )
  select
    t.id,
    t.user_id,
    t.scenario_type,
    t.idempotency_key,
    t.payload,
    public.scheduler_live_tokens(t.user_id),
    t.outcome_unknown
  from taken as t
  order by t.user_id, t.scenario_type
$$;

revoke execute on function
  public.scheduler_mark_sending(uuid, uuid[]),
  public.scheduler_reclaim(uuid, integer, integer, integer)
from public, anon, authenticated;

grant execute on function
  public.scheduler_mark_sending(uuid, uuid[]),
  public.scheduler_reclaim(uuid, integer, integer, integer)
to service_role;
