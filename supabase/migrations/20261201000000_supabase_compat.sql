-- What the scheduler's schema expects from a Supabase database, recreated on a plain Postgres server or PGlite.
-- On Supabase every object below already exists and this migration changes nothing: each step first checks.

-- The API roles. Roles belong to the whole cluster, so tests that migrate several databases of one server at once
-- may race to create them; losing that race is not an error. Without the privilege to create a BYPASSRLS role
-- (a managed server's non-superuser owner), service_role is created without it: the scheduler connects as the
-- table owner there, which row level security does not restrict either.
do $$
declare
  wanted record;
begin
  for wanted in
    select *
    from (
      values
        ('anon', 'nologin noinherit'),
        ('authenticated', 'nologin noinherit'),
        ('service_role', 'nologin noinherit bypassrls')
    ) as roles (name, options)
  loop
    if not exists (select from pg_catalog.pg_roles where rolname = wanted.name) then
      begin
        execute format('create role %I %s', wanted.name, wanted.options);
      exception
        when duplicate_object or unique_violation then
          null;
        when insufficient_privilege then
          execute format('create role %I nologin noinherit', wanted.name);
      end;
    end if;
  end loop;
end
$$;

-- The auth schema, and auth.uid() for row level security policies. Supabase's own auth.uid() is never replaced:
-- the function is created only where none exists. It reads the caller's user id from the JWT claims that
-- PostgREST puts in the session, in both the old (request.jwt.claim.sub) and the current (request.jwt.claims) form.
do $$
begin
  if not exists (select from pg_catalog.pg_namespace where nspname = 'auth') then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
  end if;

  if not exists (
    select
    from pg_catalog.pg_proc as p
    join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'uid'
  ) then
    create function auth.uid() returns uuid
    language sql
    stable
    set search_path = ''
    as $fn$
      select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
      )::uuid
    $fn$;
  end if;
end
$$;
