-- What Supabase's Data API may do with the scheduler's tables for anyone but the scheduler.
--
-- The API reaches the database as anon (no sign-in), authenticated (a signed-in user, whose id auth.uid() reads from
-- the JWT) or service_role (the scheduler: it bypasses row level security and is granted the tables). A signed-in
-- mentor may read their own notifications and their own push tokens, and nothing else: not another mentor's rows,
-- not their organisation, its configuration or the scheduler's runs. Nothing here is writable through the API, and
-- anon can read nothing at all.
--
-- Two layers say so, each sufficient on its own: the privileges (anon has none, authenticated may only SELECT the two
-- tables) and the row level security policies (enabled on every table in 20261201000100; where no policy lets a row
-- through, none is visible). Supabase grants every new table in public to anon and authenticated by default, which
-- is why the privileges are taken back here rather than only never granted. A table added by a later migration gets
-- those default grants again and needs the same treatment.

revoke all on table
  public.organisations,
  public.chapters,
  public.peer_mentors,
  public.mentor_activities,
  public.push_tokens,
  public.scenario_evaluation_config,
  public.scenario_notifications,
  public.scheduler_runs
from anon, authenticated;

-- The identity columns' sequences receive the same default grants as their tables.
do $$
declare
  sequence_name text;
begin
  foreach sequence_name in array array[
    pg_catalog.pg_get_serial_sequence('public.mentor_activities', 'id'),
    pg_catalog.pg_get_serial_sequence('public.push_tokens', 'id')
  ]
  loop
    execute format('revoke all on sequence %s from anon, authenticated', sequence_name);
  end loop;
end
$$;

grant select on table public.scenario_notifications, public.push_tokens to authenticated;

-- A mentor's own profile and activities were readable through earlier policies; they are no longer. An app that
-- wants to show them adds its own policy (and grant) deliberately, rather than inheriting one from the scheduler.
drop policy if exists "mentors read their own profile" on public.peer_mentors;
drop policy if exists "mentors read their own activities" on public.mentor_activities;

-- "mentors read their own notifications" (20261201000100) stays as it is. auth.uid() is wrapped in a subquery so
-- that Postgres computes it once per statement rather than once per row.
create policy "mentors read their own push tokens" on public.push_tokens
  for select to authenticated
  using (user_id = (select auth.uid()));
