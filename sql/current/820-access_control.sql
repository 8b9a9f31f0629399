-- Access control, enforced by Postgres so that SQL, GraphQL and REST agree.
--
-- Clients present an API key. The server authenticates it (throughline.authenticate_api_key) and runs
-- the request as one of three roles, with the key’s scope in two transaction settings:
--   throughline_reader     reads runs, steps, events and workflows
--   throughline_submitter  + starts and cancels runs
--   throughline_admin      + retries steps, manages API keys and webhooks
--   throughline.api_key_id   the key’s id
--   throughline.key_subjects the subjects (projects) the key is limited to, as a text array literal;
--                            empty for a key that sees every subject
-- Row-level security hides the runs (and their steps, events, components, …) of other subjects.
-- Workers and migrations connect as the schema owner, which RLS does not restrict.
-- SQL users granted one of the roles directly, without the settings, see every subject of their role.

-- Idempotent (graphile-migrate current): drop what this file creates, in reverse order.
drop function if exists throughline.revoke_api_key(uuid);
drop function if exists throughline.create_api_key(text, text, text[], timestamptz);
drop function if exists throughline.authenticate_api_key(text);
drop function if exists throughline.key_allows_subject(text);
drop trigger if exists _050_webhook__scope on throughline.webhook;
drop function if exists throughline.tg_webhook__scope();
drop trigger if exists _050_run__scope on throughline.run;
drop function if exists throughline.tg_run__scope();
drop table if exists throughline.api_key;

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'throughline_reader') then
    create role throughline_reader nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'throughline_submitter') then
    create role throughline_submitter nologin;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'throughline_admin') then
    create role throughline_admin nologin;
  end if;
end
$$;
comment on role throughline_reader is 'Throughline API role: reads runs, steps, events and workflows (within its key’s subjects).';
comment on role throughline_submitter is 'Throughline API role: a reader that may also start and cancel runs.';
comment on role throughline_admin is 'Throughline API role: a submitter that may also retry steps and manage API keys and webhooks.';

-- Each role includes the one below it.
grant throughline_reader to throughline_submitter;
grant throughline_submitter to throughline_admin;

-- The server connects as the schema owner and switches to these roles per request.
do $$
begin
  execute format('grant throughline_admin to %I', current_user);
exception when others then
  raise warning 'could not grant throughline_admin to %: %; grant it so the server can switch roles', current_user, sqlerrm;
end
$$;

create table throughline.api_key (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  role text not null check (role in ('reader', 'submitter', 'admin')),
  subjects text[] check (subjects is null or cardinality(subjects) > 0),
  key_hash text not null unique,
  key_prefix text not null,
  created_at timestamptz not null default now(),
  created_by text not null default session_user,
  expires_at timestamptz,
  revoked_at timestamptz
);
comment on table throughline.api_key is $$
@behavior -insert -update -delete

API keys. Only a SHA-256 hash of each key is stored; the key itself is shown once, by create_api_key.$$;
comment on column throughline.api_key.id is 'Key identity.';
comment on column throughline.api_key.name is 'What the key is for, e.g. the CI pipeline that uses it.';
comment on column throughline.api_key.role is 'reader, submitter or admin.';
comment on column throughline.api_key.subjects is 'The subjects (projects) the key may see and act on; NULL for all.';
comment on column throughline.api_key.key_hash is 'SHA-256 of the key (hex).';
comment on column throughline.api_key.key_prefix is 'The first characters of the key, to recognise it in listings.';
comment on column throughline.api_key.created_at is 'When the key was created.';
comment on column throughline.api_key.created_by is 'The database user that created it.';
comment on column throughline.api_key.expires_at is 'After this the key no longer authenticates; NULL: never.';
comment on column throughline.api_key.revoked_at is 'When the key was revoked; a revoked key no longer authenticates.';

create function throughline.create_api_key(name text, role text, subjects text[] default null, expires_at timestamptz default null)
returns table (id uuid, api_key text)
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  new_key text := 'tl_' || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
  new_id uuid;
begin
  if create_api_key.role is null or create_api_key.role not in ('reader', 'submitter', 'admin') then
    raise exception 'role must be reader, submitter or admin, got %', coalesce(create_api_key.role, 'null') using errcode = 'TL422';
  end if;
  if create_api_key.subjects is not null and (cardinality(create_api_key.subjects) = 0
      or exists (select 1 from unnest(create_api_key.subjects) s where s is null or length(s) not between 1 and 256)) then
    raise exception 'subjects must be NULL (all) or a non-empty list of 1 to 256 character names' using errcode = 'TL422';
  end if;
  -- A key scoped to subjects can only be made by a key that sees those subjects.
  if coalesce(current_setting('throughline.key_subjects', true), '') <> ''
     and (create_api_key.subjects is null
          or not create_api_key.subjects <@ current_setting('throughline.key_subjects', true)::text[]) then
    raise exception 'a key limited to some subjects cannot create a key for others' using errcode = 'TL403';
  end if;
  insert into throughline.api_key (name, role, subjects, key_hash, key_prefix, expires_at)
    values (create_api_key.name, create_api_key.role, create_api_key.subjects,
            encode(sha256(convert_to(new_key, 'UTF8')), 'hex'), left(new_key, 10), create_api_key.expires_at)
    returning throughline.api_key.id into new_id;
  return query select new_id, new_key;
end;
$$;
comment on function throughline.create_api_key(text, text, text[], timestamptz) is $$
Creates an API key with a role (reader, submitter, admin), optionally limited to some subjects
(projects) and with an expiry. Returns the key — the only time it is shown; only its hash is kept.$$;

create function throughline.revoke_api_key(id uuid) returns boolean
language sql volatile security definer
set search_path to pg_catalog
begin atomic
  update throughline.api_key k set revoked_at = now() where k.id = revoke_api_key.id and k.revoked_at is null
    returning true;
end;
comment on function throughline.revoke_api_key(uuid) is 'Revokes an API key; it stops authenticating at once (servers may cache a key for a few seconds).';

create function throughline.authenticate_api_key(api_key text)
returns table (key_id uuid, role text, subjects text[])
language sql stable security definer
set search_path to pg_catalog
begin atomic
  select k.id, k.role, k.subjects from throughline.api_key k
  where k.key_hash = encode(sha256(convert_to(authenticate_api_key.api_key, 'UTF8')), 'hex')
    and k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
end;
comment on function throughline.authenticate_api_key(text) is $$
@behavior -*

For the server: the key’s id, role and subjects if the key is valid (not revoked, not expired); no row otherwise.$$;

create function throughline.key_allows_subject(subject text) returns boolean
language sql stable parallel safe
set search_path to pg_catalog
return coalesce(current_setting('throughline.key_subjects', true), '') = ''
    or key_allows_subject.subject = any (current_setting('throughline.key_subjects', true)::text[]);
comment on function throughline.key_allows_subject(text) is $$
@behavior -*

True when the current API key may see the subject: a key without a subject list sees all.$$;

-- Writes through the SECURITY DEFINER API functions run as the owner, so the scope of a new run is
-- checked here, where it holds for every path.
create function throughline.tg_run__scope() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
begin
  if not throughline.key_allows_subject(new.subject) then
    raise exception 'this API key may not start runs for subject %', coalesce(new.subject, '(none)') using errcode = 'TL403';
  end if;
  return new;
end;
$$;
comment on function throughline.tg_run__scope() is $$
@behavior -*

Trigger: refuses a run whose subject the current API key may not act on.$$;
create trigger _050_run__scope before insert on throughline.run
  for each row execute function throughline.tg_run__scope();

create or replace function throughline.check_run_scope(token uuid) returns void
language plpgsql stable
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  if exists (select 1 from throughline.run r where r.token = check_run_scope.token
             and not throughline.key_allows_subject(r.subject)) then
    -- Same answer as for a token that does not exist: a scoped key learns nothing of other subjects.
    raise exception 'Provided token % does not exist.', check_run_scope.token using errcode = 'TL404';
  end if;
end;
$$;
comment on function throughline.check_run_scope(uuid) is $$
@behavior -*

Internal: raises “does not exist” when the current API key may not see the run.$$;


-- The API functions run as the owner (they write rows the roles cannot), after checking scope:
-- start_run through the run trigger above; cancel_run and retry_step check the run’s subject first
-- (same bodies as in the engine migration, plus that check).
alter function throughline.start_run(text, jsonb, text, jsonb, uuid) security definer;

create or replace function throughline.cancel_run(token uuid, reason text default null) returns throughline.run
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  the_run throughline.run;
begin
  perform throughline.check_run_scope(cancel_run.token);
  select r.* into the_run from throughline.run r where r.token = cancel_run.token for no key update;
  if the_run.token is null then
    raise exception 'Provided token % does not exist.', cancel_run.token using errcode = 'TL404';
  end if;
  -- Open steps only; a running attempt’s late result is then refused by the attempt fence.
  update throughline.step s set status = 'CANCELLED', status_reason = coalesce(nullif(btrim(cancel_run.reason), ''), 'Run cancelled')
    where s.token = cancel_run.token and s.status in ('PENDING', 'TIMED_OUT');
  select r.* into the_run from throughline.run r where r.token = cancel_run.token;
  return the_run;
end;
$$;

create or replace function throughline.retry_step(step_id bigint, reason text default null) returns throughline.run
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  s throughline.step;
  the_run throughline.run;
  ready_ids bigint[];
begin
  perform throughline.lock_run_of_step(retry_step.step_id);
  select t.* into s from throughline.step t where t.id = retry_step.step_id;
  if s.id is null then
    raise exception 'step % does not exist', retry_step.step_id using errcode = 'TL404';
  end if;
  perform throughline.check_run_scope(s.token);
  if s.status not in ('FAILED', 'CANCELLED') then
    raise exception 'step % of run % is %; only FAILED or CANCELLED steps can be retried', s.step, s.token, s.status
      using errcode = 'TL409';
  end if;
  select r.* into the_run from throughline.run r where r.token = s.token;
  if the_run.subject is not null and exists (
      select 1 from throughline.run o join throughline.workflow w on w.name = o.workflow and w.serialize_by_subject
      where o.subject = the_run.subject and o.token <> the_run.token and o.status = 'PENDING') then
    raise exception 'another run of subject % is pending; retry once it has ended', the_run.subject
      using errcode = 'TL409';
  end if;

  -- RECORD: the step and everything downstream of it that did not complete get a retry record in
  -- this transaction; only that lets the status guard reopen them.
  with recursive downstream (step) as (
    select s.step
    union
    select d.step from throughline.step d join downstream u on u.step = any (d.depends_on) where d.token = s.token
  )
  insert into throughline.step_retry (step_id, token, reason)
    select t.id, t.token, retry_step.reason
    from throughline.step t
    where t.token = s.token and t.step in (select downstream.step from downstream)
      and t.status in ('FAILED', 'CANCELLED');

  -- REOPEN with a fresh attempt budget. Dependencies are counted again from the statuses before this
  -- statement, in which the reopened ones still count as unsatisfied.
  update throughline.step t set
      status = 'PENDING', failure_reason = null, status_reason = null, output = null,
      ready_at = null, locked_by = null, lease_expires_at = null, heartbeat_at = null,
      max_attempts = t.attempt + coalesce(ws.max_attempts, 1),
      remaining_deps = (select count(*) from throughline.step d
                        where d.token = t.token and d.step = any (t.depends_on)
                          and d.status not in ('COMPLETED', 'NOT_APPLICABLE'))
    from throughline.workflow_step ws
    where ws.workflow = the_run.workflow and ws.step = t.step
      and t.id in (select x.step_id from throughline.step_retry x where x.token = s.token and x.xid = pg_current_xact_id());

  with ready as (
    update throughline.step t set attempt = t.attempt + 1, ready_at = now()
      where t.token = s.token and t.status = 'PENDING' and t.remaining_deps = 0 and t.ready_at is null
      returning t.id
  )
  select array_agg(ready.id) into ready_ids from ready;
  perform throughline.enqueue_step_jobs(ready_ids);
  select r.* into the_run from throughline.run r where r.token = s.token;
  return the_run;
end;
$$;

-- Row-level security: the roles see only rows of subjects their key allows. The owner is exempt.
alter table throughline.run enable row level security;
alter table throughline.step enable row level security;
alter table throughline.event enable row level security;
alter table throughline.step_attempt enable row level security;
alter table throughline.step_retry enable row level security;
alter table throughline.component enable row level security;
alter table throughline.project_metrics enable row level security;
alter table throughline.workflow enable row level security;
alter table throughline.workflow_step enable row level security;
alter table throughline.api_key enable row level security;

drop policy if exists select_in_scope on throughline.run;
create policy select_in_scope on throughline.run for select using (throughline.key_allows_subject(subject));
drop policy if exists select_in_scope on throughline.step;
create policy select_in_scope on throughline.step for select
  using (exists (select 1 from throughline.run r where r.token = step.token));
drop policy if exists select_in_scope on throughline.event;
create policy select_in_scope on throughline.event for select
  using (exists (select 1 from throughline.run r where r.token = event.token));
drop policy if exists select_in_scope on throughline.step_attempt;
create policy select_in_scope on throughline.step_attempt for select
  using (exists (select 1 from throughline.run r where r.token = step_attempt.token));
drop policy if exists select_in_scope on throughline.step_retry;
create policy select_in_scope on throughline.step_retry for select
  using (exists (select 1 from throughline.run r where r.token = step_retry.token));
drop policy if exists select_in_scope on throughline.component;
create policy select_in_scope on throughline.component for select using (throughline.key_allows_subject(project));
drop policy if exists select_in_scope on throughline.project_metrics;
create policy select_in_scope on throughline.project_metrics for select using (throughline.key_allows_subject(project));
drop policy if exists select_all on throughline.workflow;
create policy select_all on throughline.workflow for select using (true);
drop policy if exists select_all on throughline.workflow_step;
create policy select_all on throughline.workflow_step for select using (true);
drop policy if exists select_all on throughline.api_key;
create policy select_all on throughline.api_key for select using (true);

-- The hyades view must apply the caller’s RLS, not its owner’s.
alter view throughline.workflow_state set (security_invoker = true);

-- Grants: nothing by default, then what each role needs. Functions are executable by PUBLIC unless revoked.
revoke all on all functions in schema throughline from public;
grant usage on schema throughline to throughline_reader;
grant select on throughline.run, throughline.step, throughline.event, throughline.step_attempt, throughline.step_retry,
  throughline.workflow, throughline.workflow_step, throughline.workflow_state, throughline.component,
  throughline.project_metrics to throughline_reader;
grant execute on function throughline.is_processing(uuid), throughline.current_cursor(), throughline.events_after(text, uuid),
  throughline.key_allows_subject(text), throughline.is_open_status(text) to throughline_reader;
grant execute on function throughline.start_run(text, jsonb, text, jsonb, uuid), throughline.cancel_run(uuid, text)
  to throughline_submitter;
grant execute on function throughline.retry_step(bigint, text), throughline.create_api_key(text, text, text[], timestamptz),
  throughline.revoke_api_key(uuid) to throughline_admin;
grant select (id, name, role, subjects, key_prefix, created_at, created_by, expires_at, revoked_at) on throughline.api_key
  to throughline_admin;

-- Webhooks (810-webhooks.sql): managed by admins. Their secrets never leave the database through the
-- roles; a key limited to some subjects may only hook runs of those subjects.
create function throughline.tg_webhook__scope() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
begin
  if coalesce(current_setting('throughline.key_subjects', true), '') <> ''
     and (new.subject is null or not throughline.key_allows_subject(new.subject)) then
    raise exception 'a key limited to some subjects may only create webhooks for one of them' using errcode = 'TL403';
  end if;
  return new;
end;
$$;
comment on function throughline.tg_webhook__scope() is $$
@behavior -*

Trigger: a webhook made with a subject-limited key must name one of its subjects.$$;
create trigger _050_webhook__scope before insert or update on throughline.webhook
  for each row execute function throughline.tg_webhook__scope();

alter function throughline.create_webhook(text, text[], text, text, text, boolean, text, interval, integer, interval, numeric, interval) security definer;
alter function throughline.delete_webhook(bigint) security definer;
alter function throughline.set_webhook_enabled(bigint, boolean) security definer;
alter table throughline.webhook enable row level security;
alter table throughline.webhook_delivery enable row level security;
alter table throughline.webhook_delivery_attempt enable row level security;
drop policy if exists select_in_scope on throughline.webhook;
create policy select_in_scope on throughline.webhook for select
  using (subject is null and coalesce(current_setting('throughline.key_subjects', true), '') = ''
         or throughline.key_allows_subject(subject));
drop policy if exists select_in_scope on throughline.webhook_delivery;
create policy select_in_scope on throughline.webhook_delivery for select
  using (exists (select 1 from throughline.webhook w where w.id = webhook_delivery.webhook_id));
drop policy if exists select_in_scope on throughline.webhook_delivery_attempt;
create policy select_in_scope on throughline.webhook_delivery_attempt for select
  using (exists (select 1 from throughline.webhook_delivery d where d.id = webhook_delivery_attempt.delivery_id));
grant select (id, url, events, workflow, subject, enabled, description, timeout, max_attempts, backoff_initial,
              backoff_factor, backoff_max, created_at, updated_at) on throughline.webhook to throughline_admin;
grant select on throughline.webhook_delivery, throughline.webhook_delivery_attempt to throughline_admin;
grant execute on function
  throughline.create_webhook(text, text[], text, text, text, boolean, text, interval, integer, interval, numeric, interval),
  throughline.delete_webhook(bigint), throughline.set_webhook_enabled(bigint, boolean), throughline.webhook_events()
  to throughline_admin;

-- The GraphQL API’s own functions (800-graphql_api.sql): search_runs reads as its caller, so RLS
-- applies; runs_snapshot and changes_after are read by the server’s change hub as the owner, which
-- applies the key’s scope itself (server/changes/changeHub.ts).
grant execute on function throughline.search_runs(text, text, text, jsonb, timestamptz, timestamptz) to throughline_reader;
