-- The scheduler's tables. Names and columns are a contract shared with the SQL functions, the Supabase edge
-- function and the CLI; change them only together.
--
-- Row level security is enabled on every table. The scheduler reaches them as service_role (which bypasses it) or
-- as their owner (to whom it does not apply); the policies below only let a signed-in mentor read their own rows.

create table public.organisations (
  id uuid primary key default gen_random_uuid(),
  name text,
  -- An IANA zone name such as Europe/Oslo. It is not checked here: an organisation with an unknown zone is reported
  -- by the evaluation as an error for its mentors instead of blocking edits to the row.
  timezone text not null
);

create table public.chapters (
  id uuid primary key default gen_random_uuid(),
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  name text
);

-- user_id is the mentor's id in Supabase Auth (auth.users.id). There is no foreign key to auth.users because
-- plain Postgres and PGlite have no such table.
create table public.peer_mentors (
  user_id uuid primary key,
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  chapter_id uuid references public.chapters (id) on delete set null,
  status text not null default 'active' check (status in ('active', 'paused', 'inactive')),
  -- Personal data: these three columns never reach a log line.
  full_name text,
  email text,
  phone text,
  certification_expires_at date,
  notifications_enabled boolean not null default true,
  created_at timestamptz not null default now()
);

create table public.mentor_activities (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.peer_mentors (user_id) on delete cascade,
  activity_date date not null,
  kind text not null,
  created_at timestamptz not null default now()
);

-- Push tokens are secrets: they are read only by the claim step, which hands them to the push provider.
create table public.push_tokens (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.peer_mentors (user_id) on delete cascade,
  token text not null unique,
  platform text not null check (platform in ('fcm', 'expo')),
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);

-- One row per organisation and scenario overrides the defaults (see scheduler_evaluate); a missing row means the
-- scenario is enabled with its defaults. cooldown_days and params are deliberately not constrained: a value the
-- evaluation cannot use is reported as invalid_scenario_config for that scenario, and the others keep running.
create table public.scenario_evaluation_config (
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  scenario_type text not null check (scenario_type in ('inactivity', 'milestone', 'expiry')),
  enabled boolean not null default true,
  cooldown_days integer,
  params jsonb,
  last_evaluated_count integer,
  last_evaluated_at timestamptz,
  primary key (organisation_id, scenario_type)
);

-- A notification exists once it is claimed. The two unique keys are what makes claiming safe under concurrent or
-- repeated runs: one notification per mentor, scenario and cooldown window, and one per idempotency key.
-- invocation_id names the run that claimed it; it has no foreign key so that notifications outlive pruned runs.
create table public.scenario_notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.peer_mentors (user_id) on delete cascade,
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  scenario_type text not null check (scenario_type in ('inactivity', 'milestone', 'expiry')),
  evaluation_date date not null,
  cooldown_window_start date not null,
  idempotency_key text not null unique,
  status text not null default 'pending' check (status in ('pending', 'dispatched', 'failed', 'deferred')),
  payload jsonb not null default '{}'::jsonb,
  invocation_id uuid,
  attempts integer not null default 0,
  last_error_type text,
  created_at timestamptz not null default now(),
  dispatched_at timestamptz,
  unique (user_id, scenario_type, cooldown_window_start)
);

create table public.scheduler_runs (
  invocation_id uuid primary key,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  outcome text not null default 'running' check (outcome in ('running', 'completed', 'partial', 'failed', 'skipped')),
  stats jsonb,
  resume_cursor uuid
);

-- The lookups of one scheduler page.
create index mentor_activities_user_id_activity_date_idx on public.mentor_activities (user_id, activity_date);
-- Keyset pages of active mentors: user_id > cursor order by user_id, over active rows only.
create index peer_mentors_active_user_id_idx on public.peer_mentors (user_id) where status = 'active';
create index push_tokens_live_user_id_idx on public.push_tokens (user_id) where revoked_at is null;
-- The cooldown rule and the highest milestone already notified.
create index scenario_notifications_user_scenario_date_idx
  on public.scenario_notifications (user_id, scenario_type, evaluation_date);
-- Notifications still to be sent or retried.
create index scenario_notifications_open_status_idx
  on public.scenario_notifications (status)
  where status in ('pending', 'deferred');
-- The previous run, when a run opens.
create index scheduler_runs_started_at_idx on public.scheduler_runs (started_at);
-- Foreign keys Postgres does not index by itself, so that deleting an organisation or chapter stays cheap.
create index chapters_organisation_id_idx on public.chapters (organisation_id);
create index peer_mentors_organisation_id_idx on public.peer_mentors (organisation_id);
create index peer_mentors_chapter_id_idx on public.peer_mentors (chapter_id);
create index scenario_notifications_organisation_id_idx on public.scenario_notifications (organisation_id);

alter table public.organisations enable row level security;
alter table public.chapters enable row level security;
alter table public.peer_mentors enable row level security;
alter table public.mentor_activities enable row level security;
alter table public.push_tokens enable row level security;
alter table public.scenario_evaluation_config enable row level security;
alter table public.scenario_notifications enable row level security;
alter table public.scheduler_runs enable row level security;

create policy "mentors read their own profile" on public.peer_mentors
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy "mentors read their own activities" on public.mentor_activities
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy "mentors read their own notifications" on public.scenario_notifications
  for select to authenticated
  using (user_id = (select auth.uid()));

-- Supabase grants these to service_role by default; a plain server needs them spelled out.
grant usage on schema public to service_role;
grant select, insert, update, delete on
  public.organisations,
  public.chapters,
  public.peer_mentors,
  public.mentor_activities,
  public.push_tokens,
  public.scenario_evaluation_config,
  public.scenario_notifications,
  public.scheduler_runs
to service_role;
