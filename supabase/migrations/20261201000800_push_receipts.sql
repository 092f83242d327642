-- Expo's receipts, asked for by a later run.
--
-- Expo answers a send with a ticket per message; whether Apple or Google took the message is only in the receipt,
-- which Expo has some minutes later and keeps for about a day. A device that is gone shows up there as
-- DeviceNotRegistered even when its ticket was ok, so a run stores the tickets of what it sent and a later run asks
-- for their receipts, revokes the tokens of the gone devices and forgets the tickets that have an answer.

create table public.push_receipts (
  ticket_id text primary key,
  token_id bigint not null references public.push_tokens (id) on delete cascade,
  notification_id uuid references public.scenario_notifications (id) on delete cascade,
  created_at timestamptz not null default now()
);

-- The runs ask for the oldest tickets first.
create index push_receipts_created_at_idx on public.push_receipts (created_at);

-- Tickets are the scheduler's own bookkeeping: nobody else reads them through the API. Row level security with no
-- policy shows no row, and the default grants Supabase gives a new table (see 20261201000300) are taken back.
alter table public.push_receipts enable row level security;

revoke all on table public.push_receipts from anon, authenticated;

grant select, insert, update, delete on public.push_receipts to service_role;

-- Stores the tickets of a wave's accepted messages: an array of { ticket_id, token_id, notification_id }. A ticket
-- already stored, or one whose token or notification is gone by now, is skipped rather than failing the others.
-- Answers how many it stored.
create function public.scheduler_record_tickets(p_tickets jsonb)
returns integer
language sql
volatile
security invoker
set search_path = ''
as $$
  with
  tickets as (
    select r.ticket_id, r.token_id, r.notification_id
    from pg_catalog.jsonb_to_recordset(
      case when pg_catalog.jsonb_typeof(p_tickets) = 'array' then p_tickets else '[]'::jsonb end
    ) as r (ticket_id text, token_id bigint, notification_id uuid)
    where r.ticket_id is not null
  ),
  stored as (
    insert into public.push_receipts (ticket_id, token_id, notification_id)
    select t.ticket_id, t.token_id, t.notification_id
    from tickets as t
    join public.push_tokens as pt on pt.id = t.token_id
    where t.notification_id is null
      or exists (select from public.scenario_notifications as n where n.id = t.notification_id)
    on conflict (ticket_id) do nothing
    returning 1
  )
  select pg_catalog.count(*)::integer from stored
$$;

-- The tickets whose receipts are due: older than the delay Expo asks for, younger than the day it keeps receipts,
-- oldest first. Token ids are text, as everywhere the program handles them.
create function public.scheduler_due_tickets(p_older_than_seconds integer, p_limit integer)
returns table (ticket_id text, token_id text)
language sql
stable
security invoker
set search_path = ''
as $$
  select r.ticket_id, r.token_id::text
  from public.push_receipts as r
  where r.created_at <= pg_catalog.now() - pg_catalog.make_interval(secs => p_older_than_seconds)
    and r.created_at > pg_catalog.now() - interval '1 day'
  order by r.created_at, r.ticket_id
  limit p_limit
$$;

-- Forgets the tickets whose receipts have been read and revokes the tokens the receipts said are gone. Only a token
-- one of those tickets was for is revoked, so a wrong id cannot revoke an unrelated device. Tickets older than a day
-- are forgotten too: Expo no longer has their receipts. Answers how many tokens it revoked.
create function public.scheduler_settle_tickets(p_ticket_ids text[], p_revoke_token_ids bigint[])
returns integer
language sql
volatile
security invoker
set search_path = ''
as $$
  with
  settled as (
    delete from public.push_receipts as r
    where r.ticket_id = any (p_ticket_ids) or r.created_at <= pg_catalog.now() - interval '1 day'
    returning r.ticket_id, r.token_id
  ),
  revoked as (
    update public.push_tokens as t
    set revoked_at = pg_catalog.now()
    where t.id = any (p_revoke_token_ids)
      and t.revoked_at is null
      and exists (select from settled as s where s.token_id = t.id and s.ticket_id = any (p_ticket_ids))
    returning t.id
  )
  select pg_catalog.count(*)::integer from revoked
$$;

revoke execute on function
  public.scheduler_record_tickets(jsonb),
  public.scheduler_due_tickets(integer, integer),
  public.scheduler_settle_tickets(text[], bigint[])
from public, anon, authenticated;

grant execute on function
  public.scheduler_record_tickets(jsonb),
  public.scheduler_due_tickets(integer, integer),
  public.scheduler_settle_tickets(text[], bigint[])
to service_role;
