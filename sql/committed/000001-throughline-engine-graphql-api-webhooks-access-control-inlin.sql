--! Previous: -
--! Hash: sha1:17cd3be9c14dfcb7c02abc28a69fd5ccd63af12b
--! Message: Throughline: engine, GraphQL API, webhooks, access control, inline claims

--! split: 001-schema.sql
-- Throughline schema: tables, view and their documentation.
--
-- This folder is graphile-migrate’s idempotent "current" migration (folder mode): each file is one
-- concern, applied in name order. `npm run db:commit` folds it into sql/committed/. Because current
-- re-runs on every change while developing, this first file drops what the later files create.
-- Every table, column, view and function has a COMMENT ON: PostGraphile turns them into the
-- GraphQL documentation, and DBAs read them with \d+.

drop schema if exists throughline cascade;
create schema throughline;
comment on schema throughline is
  'Throughline: workflow runs and their steps, one row per step, advanced by SQL functions and triggers.';

-- Status vocabulary (hyades WORKFLOW_STATE): non-terminal PENDING, TIMED_OUT; terminal COMPLETED,
-- FAILED, CANCELLED, NOT_APPLICABLE. Kept as text + CHECK (not an enum) so the REST compatibility
-- layer and hyades-era SQL can compare plain strings.

create table throughline.workflow (
  name text primary key check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  version integer not null default 1 check (version >= 1),
  description text not null default '',
  serialize_by_subject boolean not null default true,
  subject_key text,
  max_input_bytes integer not null default 10485760 check (max_input_bytes > 0),
  definition jsonb not null,
  updated_at timestamptz not null default now()
);
comment on table throughline.workflow is $$
@behavior -insert -update -delete

A registered workflow definition. Definitions are written in TypeScript (src/workflows/) and synced
here by throughline.register_workflow at start; runs copy what they need from it, so changing a
definition never alters a run in flight.$$;
comment on column throughline.workflow.name is 'Unique workflow name, e.g. bom_upload.';
comment on column throughline.workflow.version is 'Incremented by register_workflow whenever the definition changes.';
comment on column throughline.workflow.description is 'What the workflow does, for people.';
comment on column throughline.workflow.serialize_by_subject is
  'When true, only one run per subject (e.g. per project) is processed at a time; later runs wait PENDING until the earlier one ends.';
comment on column throughline.workflow.subject_key is
  'The input field whose value is a run’s subject when the submitter names none (bom_upload: project).';
comment on column throughline.workflow.max_input_bytes is
  'The largest accepted run input, in bytes of its JSON text; start_run rejects larger inputs and writes nothing.';
comment on column throughline.workflow.definition is 'The definition as registered (steps, dependencies, retry policy), for reading.';
comment on column throughline.workflow.updated_at is 'When the definition last changed.';

create table throughline.workflow_step (
  workflow text not null references throughline.workflow (name) on delete cascade,
  step text not null check (step ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  position integer not null,
  task_identifier text not null check (task_identifier ~ '^[a-z][a-z0-9_]{0,62}$'),
  depends_on text[] not null default '{}',
  timeout interval not null default interval '60 minutes' check (timeout > interval '0'),
  max_attempts integer not null default 6 check (max_attempts between 1 and 100),
  backoff_initial interval not null default interval '5 seconds' check (backoff_initial >= interval '0'),
  backoff_factor numeric not null default 1.5 check (backoff_factor >= 1),
  backoff_max interval not null default interval '30 minutes' check (backoff_max >= interval '0'),
  primary key (workflow, step),
  unique (workflow, position)
);
comment on table throughline.workflow_step is $$
@behavior -insert -update -delete

One step of a workflow definition: which task runs it, what it waits for, and its timeout and retry policy.$$;
comment on column throughline.workflow_step.workflow is 'The workflow this step belongs to.';
comment on column throughline.workflow_step.step is 'Step name, upper snake case as hyades names them (e.g. BOM_CONSUMPTION).';
comment on column throughline.workflow_step.position is 'Topological position: every dependency has a smaller position.';
comment on column throughline.workflow_step.task_identifier is 'The Graphile Worker task that runs this step (one file in tasks/).';
comment on column throughline.workflow_step.depends_on is 'Steps that must end COMPLETED or NOT_APPLICABLE before this one runs.';
comment on column throughline.workflow_step.timeout is 'How long the step may go without progress before it is TIMED_OUT, and again before it FAILS.';
comment on column throughline.workflow_step.max_attempts is 'Attempts before a retryable error becomes a failure.';
comment on column throughline.workflow_step.backoff_initial is 'Delay before the second attempt.';
comment on column throughline.workflow_step.backoff_factor is 'Each further retry waits this many times longer than the one before.';
comment on column throughline.workflow_step.backoff_max is 'Longest delay between attempts.';

create table throughline.run (
  token uuid primary key default gen_random_uuid(),
  workflow text not null references throughline.workflow (name) on delete restrict,
  subject text check (subject is null or length(subject) between 1 and 256),
  input jsonb not null default '{}' check (jsonb_typeof(input) = 'object'),
  labels jsonb not null default '{}' check (jsonb_typeof(labels) = 'object'),
  status text not null default 'PENDING' check (status in ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  admitted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  steps_total integer not null check (steps_total > 0),
  steps_open integer not null check (steps_open between 0 and steps_total),
  steps_failed integer not null default 0 check (steps_failed >= 0),
  steps_cancelled integer not null default 0 check (steps_cancelled >= 0),
  check ((status = 'PENDING') = (steps_open > 0)),
  check ((status = 'PENDING') = (completed_at is null))
);
create index run_subject_waiting_idx on throughline.run (subject, created_at) where status = 'PENDING';
create index run_workflow_created_idx on throughline.run (workflow, created_at desc);
create index run_status_created_idx on throughline.run (status, created_at desc);
create index run_finished_updated_idx on throughline.run (updated_at) where status <> 'PENDING';
create index run_labels_idx on throughline.run using gin (labels jsonb_path_ops);
comment on table throughline.run is $$
@behavior -insert -update -delete

One workflow run (hyades: everything sharing one token). Its counters are kept by triggers on
throughline.step, so "is it done, and did it pass?" is a single-row read.$$;
comment on column throughline.run.token is 'The run''s identity, returned on submission and used by every API (hyades TOKEN).';
comment on column throughline.run.workflow is 'The workflow this run executes.';
comment on column throughline.run.subject is
  'What the run is about, e.g. a project id. With serialize_by_subject, one run per subject is processed at a time.';
comment on column throughline.run.input is 'The run input as submitted (for bom_upload: project and the CycloneDX document).';
comment on column throughline.run.labels is 'Free-form labels for filtering (a JSON object of strings).';
comment on column throughline.run.status is
  'Rolled-up status: PENDING while any step is PENDING or TIMED_OUT; then FAILED if a step failed, CANCELLED if a step was cancelled, else COMPLETED.';
comment on column throughline.run.admitted_at is
  'When the run was allowed to start. NULL while it waits for an earlier run of the same subject to end.';
comment on column throughline.run.created_at is 'When the run was submitted.';
comment on column throughline.run.updated_at is 'When any of its steps last changed status.';
comment on column throughline.run.completed_at is 'When its last open step ended; NULL while processing.';
comment on column throughline.run.steps_total is 'Number of steps in the run.';
comment on column throughline.run.steps_open is 'Steps still PENDING or TIMED_OUT; the run is processing while this is above zero.';
comment on column throughline.run.steps_failed is 'Steps that ended FAILED.';
comment on column throughline.run.steps_cancelled is 'Steps that ended CANCELLED.';

create table throughline.step (
  id bigint generated by default as identity primary key,
  token uuid not null references throughline.run (token) on delete cascade,
  parent_step_id bigint references throughline.step (id) on delete cascade deferrable initially deferred,
  step text not null check (step ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  status text not null default 'PENDING'
    check (status in ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED', 'NOT_APPLICABLE', 'TIMED_OUT')),
  started_at timestamptz,
  updated_at timestamptz not null default now(),
  failure_reason text,
  status_reason text,
  task_identifier text not null,
  depends_on text[] not null default '{}',
  remaining_deps integer not null check (remaining_deps >= 0),
  ready_at timestamptz,
  attempt integer not null default 0 check (attempt >= 0),
  max_attempts integer not null check (max_attempts >= 1),
  timeout interval not null,
  locked_by text,
  lease_expires_at timestamptz,
  heartbeat_at timestamptz,
  output jsonb,
  unique (token, step),
  constraint step_failed_has_reason check (status <> 'FAILED' or coalesce(length(btrim(failure_reason)), 0) > 0)
);
create index step_parent_step_id_idx on throughline.step (parent_step_id);
-- Maintenance scans, each on a partial index whose condition no per-run query implies: an index
-- on open steps (status in PENDING, TIMED_OUT) was chosen by the planner, before statistics exist,
-- for every "steps of this run that are PENDING" query and scanned all open steps of all runs
-- (0.7 ms instead of 0.07 ms per query at 2,000 runs in flight).
-- Leases: reclaim_expired_leases (terminal steps have no lease).
create index step_lease_idx on throughline.step (lease_expires_at) where lease_expires_at is not null;
-- Ready steps nobody claimed: the lost-doorbell sweep.
create index step_unclaimed_idx on throughline.step (ready_at) where locked_by is null and status in ('PENDING', 'TIMED_OUT');
comment on table throughline.step is $$
@behavior -insert -update -delete

One step of one run: the hyades WORKFLOW_STATE row made first-class. Status changes are guarded by
triggers (terminal rows never change except through a recorded retry) and advance the run’s DAG in
the same transaction.$$;
comment on column throughline.step.id is 'Step identity (hyades ID).';
comment on column throughline.step.token is 'The run this step belongs to (hyades TOKEN).';
comment on column throughline.step.parent_step_id is 'The step this one follows in the hyades tree (its first dependency); NULL for a root.';
comment on column throughline.step.step is 'Step name, e.g. BOM_CONSUMPTION (hyades STEP).';
comment on column throughline.step.status is 'PENDING, COMPLETED, FAILED, CANCELLED, NOT_APPLICABLE or TIMED_OUT (hyades STATUS).';
comment on column throughline.step.started_at is 'When its first attempt began running; NULL until then (hyades STARTED_AT).';
comment on column throughline.step.updated_at is 'When its status last changed or an attempt began (hyades UPDATED_AT).';
comment on column throughline.step.failure_reason is 'Why the step FAILED; never empty for a FAILED step (hyades FAILURE_REASON).';
comment on column throughline.step.status_reason is 'Why the step ended NOT_APPLICABLE or CANCELLED, when known.';
comment on column throughline.step.task_identifier is 'The Graphile Worker task that runs this step.';
comment on column throughline.step.depends_on is 'Names of the steps of this run that must end COMPLETED or NOT_APPLICABLE first.';
comment on column throughline.step.remaining_deps is 'Dependencies not yet satisfied; the step becomes runnable at zero (a counter, not a recount).';
comment on column throughline.step.ready_at is 'When the step became runnable and its job was enqueued; NULL before. Timeouts count from here.';
comment on column throughline.step.attempt is 'The current attempt (1-based once enqueued). Completions from any other attempt change nothing.';
comment on column throughline.step.max_attempts is 'Attempts allowed before a retryable error becomes a failure.';
comment on column throughline.step.timeout is 'How long the step may go without progress before it is TIMED_OUT.';
comment on column throughline.step.locked_by is 'The worker running the current attempt; NULL while queued.';
comment on column throughline.step.lease_expires_at is 'The current attempt is presumed dead after this time unless its worker heartbeats.';
comment on column throughline.step.heartbeat_at is 'Last sign of life from the worker running the current attempt.';
comment on column throughline.step.output is 'The step''s result, written in the same transaction as its COMPLETED status.';

create table throughline.step_attempt (
  step_id bigint not null references throughline.step (id) on delete cascade,
  attempt integer not null check (attempt >= 1),
  token uuid not null,
  worker_id text not null,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  outcome text not null default 'RUNNING'
    check (outcome in ('RUNNING', 'COMPLETED', 'NOT_APPLICABLE', 'RETRY', 'FAILED', 'LEASE_EXPIRED', 'SUPERSEDED')),
  error text,
  primary key (step_id, attempt)
);
comment on table throughline.step_attempt is $$
@behavior -insert -update -delete

Attempt history: who ran which attempt of a step, when, and how it ended. Retries keep their history.$$;
comment on column throughline.step_attempt.step_id is 'The step.';
comment on column throughline.step_attempt.attempt is 'The attempt number.';
comment on column throughline.step_attempt.token is 'The run (copied for reading without a join).';
comment on column throughline.step_attempt.worker_id is 'The worker process that ran the attempt.';
comment on column throughline.step_attempt.started_at is 'When the attempt began.';
comment on column throughline.step_attempt.ended_at is 'When it ended; NULL while running.';
comment on column throughline.step_attempt.outcome is
  'RUNNING, COMPLETED, NOT_APPLICABLE, RETRY (retryable error, another attempt scheduled), FAILED, LEASE_EXPIRED (worker lost) or SUPERSEDED (the step ended another way).';
comment on column throughline.step_attempt.error is 'The error the attempt ended with, if any.';

create table throughline.step_retry (
  id bigint generated always as identity primary key,
  step_id bigint not null references throughline.step (id) on delete cascade,
  token uuid not null,
  requested_at timestamptz not null default now(),
  requested_by text not null default current_user,
  reason text,
  xid xid8 not null default pg_current_xact_id()
);
create index step_retry_step_id_idx on throughline.step_retry (step_id);
comment on table throughline.step_retry is $$
@behavior -insert -update -delete

Recorded retries: the only way a terminal step may change again. The status guard accepts a
terminal → PENDING change only when a row here names the step in the same transaction.$$;
comment on column throughline.step_retry.id is 'Retry identity.';
comment on column throughline.step_retry.step_id is 'The step that was retried (the failed one; its downstream is reopened with it).';
comment on column throughline.step_retry.token is 'The run.';
comment on column throughline.step_retry.requested_at is 'When the retry was requested.';
comment on column throughline.step_retry.requested_by is 'The database role that requested it.';
comment on column throughline.step_retry.reason is 'Why, as given by the requester.';
comment on column throughline.step_retry.xid is 'The transaction that recorded the retry (what the guard checks).';

create table throughline.event (
  seq bigint generated always as identity primary key,
  xid xid8 not null default pg_current_xact_id(),
  token uuid not null references throughline.run (token) on delete cascade,
  step_id bigint,
  step text,
  kind text not null check (kind in ('RUN_CREATED', 'RUN_ADMITTED', 'RUN_ENDED', 'RUN_REOPENED', 'STEP_STATUS', 'STEP_STARTED', 'STEP_RETRY_SCHEDULED')),
  from_status text,
  to_status text,
  attempt integer,
  reason text,
  at timestamptz not null default now()
);
create index event_xid_idx on throughline.event (xid);
create index event_token_seq_idx on throughline.event (token, seq);
comment on table throughline.event is $$
@behavior -insert -update -delete

Append-only log of every transition, written by the same transaction as the change. Readers resume
from a cursor (a pg_snapshot, see throughline.events_after), so a subscriber or poller never misses a
transition and never sees one twice, whatever order concurrent transactions commit in.$$;
comment on column throughline.event.seq is 'Order of writing; within one run it is the order of the transitions.';
comment on column throughline.event.xid is 'The writing transaction; cursors are snapshots, so this decides which reads an event belongs to.';
comment on column throughline.event.token is 'The run.';
comment on column throughline.event.step_id is 'The step, for step events.';
comment on column throughline.event.step is 'The step name, for step events.';
comment on column throughline.event.kind is
  'RUN_CREATED, RUN_ADMITTED, RUN_ENDED, RUN_REOPENED (a retry), STEP_STATUS (a status change), STEP_STARTED (an attempt began) or STEP_RETRY_SCHEDULED.';
comment on column throughline.event.from_status is 'Status before (step or run).';
comment on column throughline.event.to_status is 'Status after (step or run).';
comment on column throughline.event.attempt is 'The attempt concerned, for step events.';
comment on column throughline.event.reason is 'Failure, cancellation or retry reason, when there is one.';
comment on column throughline.event.at is 'When the transition happened (transaction time).';

create view throughline.workflow_state as
  select id, parent_step_id, token, started_at, updated_at, step, status, failure_reason
  from throughline.step;
comment on view throughline.workflow_state is $$
@behavior -*

hyades-compatible view: exactly the columns of Dependency-Track’s WORKFLOW_STATE table, for DBAs and
tools written against it.$$;

--! split: 100-enqueue_step_jobs.sql
-- The one place that talks to Graphile Worker. A job is a doorbell: it carries the step id and the
-- attempt it is for, nothing else; leases, attempts and results live in throughline.step.

create function throughline.enqueue_step_jobs(step_ids bigint[], run_at timestamptz default now())
returns void
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  if coalesce(cardinality(enqueue_step_jobs.step_ids), 0) = 0 then
    return;
  end if;
  -- graphile_worker.add_jobs needs its owner’s rights; this wrapper is SECURITY DEFINER so that
  -- callers with only throughline rights (API roles, triggers fired by them) can still enqueue.
  -- One job key per (step, attempt), never reused for another attempt (anchors: replace mode makes a
  -- second job while the first runs). The key lets reclaim_expired_leases see whether an attempt’s
  -- job is still alive; the attempt fence makes a duplicate job harmless.
  perform graphile_worker.add_jobs(
    array(
      select row(
        s.task_identifier,
        json_build_object('stepId', s.id, 'attempt', s.attempt),
        null, enqueue_step_jobs.run_at, 3, format('throughline:step:%s:%s', s.id, s.attempt), null, null
      )::graphile_worker.job_spec
      from throughline.step s
      where s.id = any (enqueue_step_jobs.step_ids)
      order by s.id
    )
  );
end;
$$;
revoke all on function throughline.enqueue_step_jobs(bigint[], timestamptz) from public;
comment on function throughline.enqueue_step_jobs(bigint[], timestamptz) is $$
@behavior -*

Internal: enqueues one Graphile Worker job per step (payload {stepId, attempt}) at run_at. Called by
the DAG-advancing triggers and functions in the same transaction as the change that made the steps
runnable.$$;

--! split: 200-step_triggers.sql
-- The rules of a step’s life, enforced for every writer: the throughline.* functions, workers,
-- GraphQL and a DBA’s plain UPDATE all go through these triggers.
--
-- Lock order (deadlock avoidance): every throughline.* function that changes steps first locks the
-- run row (FOR UPDATE), then steps. The triggers below then only touch rows of that same run, plus,
-- when a run ends, the next waiting run of its subject (taken with SKIP LOCKED).

create function throughline.is_open_status(status text) returns boolean
language sql immutable parallel safe
set search_path to pg_catalog
return status in ('PENDING', 'TIMED_OUT');
comment on function throughline.is_open_status(text) is $$
@behavior -*

True for the non-terminal statuses PENDING and TIMED_OUT: a run is processing while any step has one.$$;

-- _100: before the row is written, refuse what the rules forbid and stamp updated_at.
create function throughline.tg_step__guard() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  -- GUARD: identity never changes.
  if new.id <> old.id or new.token <> old.token or new.step <> old.step
     or new.task_identifier <> old.task_identifier or new.depends_on <> old.depends_on
     or new.parent_step_id is distinct from old.parent_step_id then
    raise exception 'step % of run % cannot change its identity (id, token, step, task, dependencies, parent)',
      old.step, old.token
      using errcode = 'TL001';
  end if;

  if new.status is distinct from old.status then
    -- GUARD: the allowed transitions.
    if old.status = 'PENDING' then
      null; -- PENDING may become any other status.
    elsif old.status = 'TIMED_OUT' and new.status in ('COMPLETED', 'FAILED', 'CANCELLED') then
      null; -- a timeout is not proof of failure: a late result still counts.
    elsif new.status = 'PENDING'
      and exists (select 1 from throughline.step_retry r
                  where r.step_id = old.id and r.xid = pg_current_xact_id()) then
      null; -- reopened by a retry recorded in this very transaction.
    else
      raise exception 'step % of run % cannot go from % to %', old.step, old.token, old.status, new.status
        using errcode = 'TL002',
              hint = case when throughline.is_open_status(old.status) then
                       'TIMED_OUT may only become COMPLETED, FAILED or CANCELLED.'
                     else
                       'A terminal step changes only through throughline.retry_step, which records the retry.'
                     end;
    end if;
    -- One transaction, one time: a failure and the cancellations it causes share updated_at.
    new.updated_at := now();
    if not throughline.is_open_status(new.status) then
      new.locked_by := null;
      new.lease_expires_at := null;
    end if;
  elsif not throughline.is_open_status(old.status) and row (new.*) is distinct from row (old.*) then
    -- GUARD: terminal rows are immutable.
    raise exception 'step % of run % is % and can no longer change', old.step, old.token, old.status
      using errcode = 'TL003',
            hint = 'A terminal step changes only through throughline.retry_step, which records the retry.';
  end if;
  return new;
end;
$$;
comment on function throughline.tg_step__guard() is $$
@behavior -*

Trigger: refuses illegal status transitions and changes to terminal or identity columns, and stamps
updated_at on every status change.$$;

create trigger _100_step__guard
  before update on throughline.step
  for each row execute function throughline.tg_step__guard();

create function throughline.tg_step__forbid_insert_outside_start_run() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  if coalesce(current_setting('throughline.creating_run', true), '') <> new.token::text then
    raise exception 'steps are created only by throughline.start_run (run %)', new.token
      using errcode = 'TL004';
  end if;
  return new;
end;
$$;
comment on function throughline.tg_step__forbid_insert_outside_start_run() is $$
@behavior -*

Trigger: steps are created only by throughline.start_run, all at once, so a run is never seen with
some of its steps missing (a premature "not processing").$$;

create trigger _100_step__forbid_insert
  before insert on throughline.step
  for each row execute function throughline.tg_step__forbid_insert_outside_start_run();

-- _500: after a status change, record it, move the run’s counters, and advance or cascade.
create function throughline.tg_step__advance() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  open_delta integer := throughline.is_open_status(new.status)::integer - throughline.is_open_status(old.status)::integer;
  failed_delta integer := (new.status = 'FAILED')::integer - (old.status = 'FAILED')::integer;
  cancelled_delta integer := (new.status = 'CANCELLED')::integer - (old.status = 'CANCELLED')::integer;
  old_run_status text;
  the_run throughline.run;
  ready_ids bigint[];
begin
  insert into throughline.event (token, step_id, step, kind, from_status, to_status, attempt, reason)
  values (new.token, new.id, new.step, 'STEP_STATUS', old.status, new.status, new.attempt,
          coalesce(new.failure_reason, new.status_reason));

  -- Close the current attempt’s history row if the step ended while an attempt was running
  -- (cancelled, timed out into FAILED, …); the functions that end a step on purpose set the outcome first.
  if not throughline.is_open_status(new.status) then
    update throughline.step_attempt a
      set outcome = 'SUPERSEDED', ended_at = now()
      where a.step_id = new.id and a.outcome = 'RUNNING';
  end if;

  select r.status into old_run_status from throughline.run r where r.token = new.token;
  update throughline.run r set
      steps_open = r.steps_open + open_delta,
      steps_failed = r.steps_failed + failed_delta,
      steps_cancelled = r.steps_cancelled + cancelled_delta,
      updated_at = now(),
      status = case
        when r.steps_open + open_delta > 0 then 'PENDING'
        when r.steps_failed + failed_delta > 0 then 'FAILED'
        when r.steps_cancelled + cancelled_delta > 0 then 'CANCELLED'
        else 'COMPLETED' end,
      completed_at = case when r.steps_open + open_delta > 0 then null else coalesce(r.completed_at, now()) end
    where r.token = new.token
    returning r.* into the_run;

  if new.status in ('COMPLETED', 'NOT_APPLICABLE') then
    -- ADVANCE: one dependency fewer for each waiting dependent; those at zero start now, in this
    -- transaction (if the run has been admitted; otherwise admission starts its roots later).
    with released as (
      update throughline.step d set
          remaining_deps = d.remaining_deps - 1,
          attempt = case when d.remaining_deps = 1 and the_run.admitted_at is not null then d.attempt + 1 else d.attempt end,
          ready_at = case when d.remaining_deps = 1 and the_run.admitted_at is not null then now() else d.ready_at end
        where d.token = new.token and new.step = any (d.depends_on) and d.status = 'PENDING' and d.remaining_deps > 0
        returning d.id, d.remaining_deps
    )
    select array_agg(released.id) into ready_ids from released where released.remaining_deps = 0;
    -- A worker finishing the step through finish_step takes some of these itself, in this
    -- transaction, and enqueues the rest (see 900-inline_claims.sql); anyone else enqueues them now.
    if the_run.admitted_at is not null and coalesce(current_setting('throughline.defer_enqueue', true), '') <> 'on' then
      perform throughline.enqueue_step_jobs(ready_ids);
    end if;
  elsif new.status in ('FAILED', 'CANCELLED') then
    -- CASCADE: nothing downstream of a failed or cancelled step can run any more. Only open steps
    -- are touched: terminal rows never change (hyades cancelled even finished descendants).
    with recursive downstream (step) as (
      select d.step from throughline.step d where d.token = new.token and new.step = any (d.depends_on)
      union
      select d.step from throughline.step d join downstream u on u.step = any (d.depends_on)
      where d.token = new.token
    )
    update throughline.step s set
        status = 'CANCELLED',
        status_reason = format('Upstream step %s %s', new.step, case new.status when 'FAILED' then 'failed' else 'was cancelled' end)
      where s.token = new.token
        and s.step in (select downstream.step from downstream)
        and s.status in ('PENDING', 'TIMED_OUT');
  end if;

  if old_run_status = 'PENDING' and the_run.status <> 'PENDING' then
    insert into throughline.event (token, kind, from_status, to_status)
    values (the_run.token, 'RUN_ENDED', old_run_status, the_run.status);
    if the_run.subject is not null then
      perform throughline.admit_next_run(the_run.subject);
    end if;
  elsif old_run_status <> 'PENDING' and the_run.status = 'PENDING' then
    insert into throughline.event (token, kind, from_status, to_status)
    values (the_run.token, 'RUN_REOPENED', old_run_status, the_run.status);
  end if;
  return null;
end;
$$;
comment on function throughline.tg_step__advance() is $$
@behavior -*

Trigger: after a status change, appends the event, moves the run’s counters and status, releases
dependents (enqueueing those that became runnable) or cancels everything open downstream, and when
the run ends admits the next waiting run of its subject. All in the changing transaction.$$;

create trigger _500_step__advance
  after update of status on throughline.step
  for each row
  when (old.status is distinct from new.status)
  execute function throughline.tg_step__advance();

-- Events are immutable; deleting them happens only with their run (retention).
create function throughline.tg_event__append_only() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  raise exception 'throughline.event is append-only' using errcode = 'TL005';
end;
$$;
comment on function throughline.tg_event__append_only() is $$
@behavior -*

Trigger: refuses updates to the event log.$$;

create trigger _100_event__append_only
  before update on throughline.event
  for each row execute function throughline.tg_event__append_only();

-- _900: at most one NOTIFY per transaction, and only for run-level events (see below). Postgres folds identical notifications of one
-- transaction into one, and the payload carries nothing: listeners read throughline.events_after
-- from their cursor, so a lost or merged notification costs nothing, and the notification is sent
-- only when (and if) the transaction commits.
create function throughline.tg_event__notify() returns trigger
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  perform pg_notify('throughline:events', '');
  return null;
end;
$$;
comment on function throughline.tg_event__notify() is $$
@behavior -*

Trigger: wakes listeners (LISTEN "throughline:events") after the transaction commits.$$;

create trigger _900_event__notify
  after insert on throughline.event
  for each row
  when (new.kind in ('RUN_CREATED', 'RUN_ADMITTED', 'RUN_ENDED', 'RUN_REOPENED'))
  execute function throughline.tg_event__notify();

-- Inline claims: the worker that finishes a step takes the dependents it released, in the same
-- transaction, instead of sending each through a Graphile Worker job. Why (bench/README.md, profile):
-- a job per step cost four transactions per step and a queue hop (two commits, four process
-- wake-ups) between consecutive steps. Now a chain costs one transaction per step: finish this one,
-- claim the next. SQL still decides what is runnable (the remaining-dependency counters in
-- tg_step__advance); the worker only says how many it can take. Released steps it does not take are
-- enqueued as Graphile Worker jobs in the same transaction, as before, and a claimed step has a
-- lease like any other, so a worker that dies with claims in hand loses them to the lease sweep.
--
-- NOTIFY only for run-level events: a transaction that sends NOTIFY takes a cluster-wide lock at
-- commit and holds it through the WAL flush, so notifying from every step transaction made all step
-- commits wait in one line (bench/README.md: half the worker slots parked on Lock:object). Step
-- events are still in the log at once; readers poll events_after from their cursor (one cheap
-- query per server or stream, every ~50 ms while someone listens) and wake at once on run events.

--! split: 300-start_run.sql
-- Submitting work: start_run creates a run and all its steps and starts what may start, atomically;
-- admit_next_run lets the next waiting run of a subject go when the one before it ends.

create function throughline.lock_subject(subject text) returns void
language sql volatile
set search_path to pg_catalog
begin atomic
  -- A transaction-scoped lock per subject: admission decisions for one subject never interleave.
  select pg_advisory_xact_lock(hashtextextended('throughline:subject:' || lock_subject.subject, 0));
end;
comment on function throughline.lock_subject(text) is $$
@behavior -*

Internal: serialises admission decisions for one subject until the end of the transaction.$$;

create function throughline.admit_run(token uuid) returns void
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  root_ids bigint[];
begin
  update throughline.run r set admitted_at = now() where r.token = admit_run.token and r.admitted_at is null;
  if not found then
    return;
  end if;
  with roots as (
    update throughline.step s set attempt = s.attempt + 1, ready_at = now()
      where s.token = admit_run.token and s.status = 'PENDING' and s.remaining_deps = 0 and s.ready_at is null
      returning s.id
  )
  select array_agg(roots.id) into root_ids from roots;
  insert into throughline.event (token, kind, to_status) values (admit_run.token, 'RUN_ADMITTED', 'PENDING');
  perform throughline.enqueue_step_jobs(root_ids);
end;
$$;
comment on function throughline.admit_run(uuid) is $$
@behavior -*

Internal: marks a run admitted and enqueues its root steps.$$;

create function throughline.admit_next_run(subject text) returns uuid
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  next_token uuid;
begin
  perform throughline.lock_subject(admit_next_run.subject);
  -- GUARD: someone is still running for this subject (e.g. a retried run): wait for it instead.
  if exists (select 1 from throughline.run r
             where r.subject = admit_next_run.subject and r.status = 'PENDING' and r.admitted_at is not null) then
    return null;
  end if;
  -- SKIP LOCKED: a waiting run being cancelled right now is passed over rather than waited for.
  select r.token into next_token
    from throughline.run r
    join throughline.workflow w on w.name = r.workflow and w.serialize_by_subject
    where r.subject = admit_next_run.subject and r.status = 'PENDING' and r.admitted_at is null
    order by r.created_at, r.token
    limit 1
    for update of r skip locked;
  if next_token is not null then
    perform throughline.admit_run(next_token);
  end if;
  return next_token;
end;
$$;
comment on function throughline.admit_next_run(text) is $$
@behavior -*

Internal: when a subject’s run ends, admits the oldest run of that subject still waiting, if no
other run of the subject is being processed. Returns its token, or NULL.$$;

create function throughline.start_run(
  workflow text,
  input jsonb default '{}',
  subject text default null,
  labels jsonb default '{}',
  token uuid default null
) returns throughline.run
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  wf throughline.workflow;
  the_token uuid := coalesce(start_run.token, gen_random_uuid());
  the_run throughline.run;
  input_bytes integer;
  admitted boolean;
  the_subject text := start_run.subject;
begin
  -- GUARD: what is submitted must make sense before anything is written.
  select w.* into wf from throughline.workflow w where w.name = start_run.workflow;
  if wf.name is null then
    raise exception 'unknown workflow "%"', start_run.workflow
      using errcode = 'TL404',
            hint = (select 'Registered workflows: ' || coalesce(string_agg(w.name, ', ' order by w.name), 'none')
                    from throughline.workflow w);
  end if;
  if start_run.input is null or jsonb_typeof(start_run.input) <> 'object' then
    raise exception 'run input must be a JSON object, got %', coalesce(jsonb_typeof(start_run.input), 'null')
      using errcode = 'TL422';
  end if;
  input_bytes := octet_length(start_run.input::text);
  if input_bytes > wf.max_input_bytes then
    raise exception 'run input is % bytes, more than the % bytes workflow "%" accepts', input_bytes, wf.max_input_bytes, wf.name
      using errcode = 'TL413';
  end if;
  if start_run.labels is null or jsonb_typeof(start_run.labels) <> 'object' then
    raise exception 'labels must be a JSON object' using errcode = 'TL422';
  end if;
  if the_subject is null and wf.subject_key is not null then
    the_subject := start_run.input ->> wf.subject_key;
  end if;
  if the_subject is not null and length(the_subject) not between 1 and 256 then
    raise exception 'subject must be 1 to 256 characters' using errcode = 'TL422';
  end if;

  -- IDEMPOTENCY: a token names one submission. A concurrent insert of the same token waits on the
  -- primary key and then finds the row; a repeat returns the run that exists.
  if wf.serialize_by_subject and the_subject is not null then
    perform throughline.lock_subject(the_subject);
  end if;
  insert into throughline.run as r (token, workflow, subject, input, labels, steps_total, steps_open)
    select the_token, wf.name, the_subject, start_run.input, start_run.labels, count(*), count(*)
    from throughline.workflow_step ws where ws.workflow = wf.name
    having count(*) > 0
    on conflict on constraint run_pkey do nothing
    returning r.* into the_run;
  if the_run.token is null then
    select r.* into the_run from throughline.run r where r.token = the_token;
    if the_run.token is null then
      raise exception 'workflow "%" has no steps', wf.name using errcode = 'TL422';
    end if;
    if the_run.workflow <> wf.name or the_run.input <> start_run.input
       or the_run.subject is distinct from the_subject then
      raise exception 'token % was already used for a different submission', the_token
        using errcode = 'TL409',
              hint = 'Reuse a token only to repeat the same submission; omit it to get a new one.';
    end if;
    return the_run;
  end if;

  -- All steps at once, PENDING, so "processing" is true from the first commit until the last step ends.
  perform set_config('throughline.creating_run', the_token::text, true);
  with defs as (
    select ws.*, nextval(pg_get_serial_sequence('throughline.step', 'id')) as id
    from throughline.workflow_step ws
    where ws.workflow = wf.name
  )
  insert into throughline.step
      (id, token, parent_step_id, step, task_identifier, depends_on, remaining_deps, max_attempts, timeout)
    select d.id, the_token, (select p.id from defs p where p.step = d.depends_on[1]), d.step, d.task_identifier,
           d.depends_on, cardinality(d.depends_on), d.max_attempts, d.timeout
    from defs d
    order by d.position;
  perform set_config('throughline.creating_run', '', true);
  insert into throughline.event (token, kind, to_status) values (the_token, 'RUN_CREATED', 'PENDING');

  -- ADMISSION: with per-subject serialisation, wait while another run of the subject is processing.
  admitted := not (wf.serialize_by_subject and the_subject is not null and exists (
    select 1 from throughline.run r
    where r.subject = the_subject and r.status = 'PENDING' and r.token <> the_token));
  if admitted then
    perform throughline.admit_run(the_token);
  end if;
  select r.* into the_run from throughline.run r where r.token = the_token;
  return the_run;
end;
$$;
comment on function throughline.start_run(text, jsonb, text, jsonb, uuid) is $$
Starts a run of a workflow: validates the input, creates the run and all of its steps PENDING, and
enqueues the root steps, in one transaction. Idempotent: given a token that already names the same
submission it returns that run (concurrent submissions of one token make one run); a token reused
for a different submission is an error (TL409). Unknown workflow: TL404; input not an object or bad
labels: TL422; input larger than the workflow’s max_input_bytes: TL413. When the workflow serialises
by subject and another run of the subject is processing, the run waits PENDING and starts when that
one ends. Without a subject, the workflow’s subject_key names the input field to take it from.$$;

create function throughline.is_processing(token uuid) returns boolean
language sql stable
set search_path to pg_catalog
return coalesce((select r.steps_open > 0 from throughline.run r where r.token = is_processing.token), false);
comment on function throughline.is_processing(uuid) is
  'True while any step of the run is PENDING or TIMED_OUT; false when all have ended, and false for an unknown token (as hyades answers).';

--! split: 310-step_attempts.sql
-- A worker’s side of a step: claim an attempt, keep its lease alive, and end it. Every write is
-- fenced by (step, attempt, status): an attempt that was reclaimed, cancelled or already ended can
-- no longer change anything, whatever it sends and however late.

create function throughline.lock_run_of_step(step_id bigint) returns uuid
language sql volatile
set search_path to pg_catalog
begin atomic
  -- Lock order: run first, then its steps (see 200-step_triggers.sql).
  select r.token from throughline.run r
  where r.token = (select s.token from throughline.step s where s.id = lock_run_of_step.step_id)
  for no key update of r;
end;
comment on function throughline.lock_run_of_step(bigint) is $$
@behavior -*

Internal: locks the run of a step before the step is changed, so that all writers lock in one order.$$;

create function throughline.begin_step(step_id bigint, attempt integer, worker_id text, lease interval default interval '30 seconds')
returns jsonb
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  s throughline.step;
  r throughline.run;
begin
  if begin_step.lease is null or begin_step.lease <= interval '0' then
    raise exception 'lease must be positive' using errcode = 'TL422';
  end if;
  -- FENCE: only the current attempt of an open step, and only once (a second claim of the same
  -- attempt, e.g. a redelivered job, gets nothing).
  update throughline.step t set
      locked_by = begin_step.worker_id,
      lease_expires_at = now() + begin_step.lease,
      heartbeat_at = now(),
      started_at = coalesce(t.started_at, now()),
      updated_at = case when t.status = 'PENDING' then now() else t.updated_at end
    where t.id = begin_step.step_id and t.attempt = begin_step.attempt
      and t.status in ('PENDING', 'TIMED_OUT') and t.locked_by is null and t.ready_at is not null
    returning t.* into s;
  if s.id is null then
    return null;
  end if;
  insert into throughline.step_attempt (step_id, attempt, token, worker_id)
    values (s.id, s.attempt, s.token, begin_step.worker_id)
    on conflict (step_id, attempt) do nothing;
  insert into throughline.event (token, step_id, step, kind, from_status, to_status, attempt)
    values (s.token, s.id, s.step, 'STEP_STARTED', s.status, s.status, s.attempt);
  select x.* into r from throughline.run x where x.token = s.token;
  return jsonb_build_object(
    'stepId', s.id, 'token', s.token, 'step', s.step, 'task', s.task_identifier, 'attempt', s.attempt, 'maxAttempts', s.max_attempts,
    'workflow', r.workflow, 'subject', r.subject, 'input', r.input, 'labels', r.labels,
    'upstream', coalesce((select jsonb_object_agg(u.step, jsonb_build_object('status', u.status, 'output', u.output))
                          from throughline.step u where u.token = s.token and u.step = any (s.depends_on)), '{}'::jsonb)
  );
end;
$$;
comment on function throughline.begin_step(bigint, integer, text, interval) is $$
@behavior -*

Claims an attempt of a step for a worker: takes a lease, stamps started_at and records the attempt.
Returns what the step needs (run input, subject, upstream outputs), or NULL when the attempt is no
longer current, already claimed, or the step has ended.$$;

create function throughline.heartbeat_steps(worker_id text, step_ids bigint[], attempts integer[], lease interval)
returns bigint[]
language sql volatile
set search_path to pg_catalog
begin atomic
  -- No status change, no event: a heartbeat only moves the lease (and is cheap enough to run often).
  with beat as (
    update throughline.step t set lease_expires_at = now() + heartbeat_steps.lease, heartbeat_at = now()
    from unnest(heartbeat_steps.step_ids, heartbeat_steps.attempts) as h(step_id, attempt)
    where t.id = h.step_id and t.attempt = h.attempt and t.locked_by = heartbeat_steps.worker_id
      and t.status in ('PENDING', 'TIMED_OUT')
    returning t.id
  )
  select coalesce(array_agg(beat.id), '{}') from beat;
end;
comment on function throughline.heartbeat_steps(text, bigint[], integer[], interval) is $$
@behavior -*

Extends the leases of the attempts a worker is running. Returns the step ids it still holds; an
attempt missing from the answer was reclaimed or ended, and its result will be refused.$$;

create function throughline.complete_step(step_id bigint, attempt integer, output jsonb default null)
returns boolean
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  perform throughline.lock_run_of_step(complete_step.step_id);
  update throughline.step_attempt a set outcome = 'COMPLETED', ended_at = now()
    where a.step_id = complete_step.step_id and a.attempt = complete_step.attempt and a.outcome = 'RUNNING'
      and exists (select 1 from throughline.step t where t.id = a.step_id and t.attempt = a.attempt
                  and t.status in ('PENDING', 'TIMED_OUT'));
  -- FENCE: the current attempt of an open step; TIMED_OUT may still complete.
  update throughline.step t set status = 'COMPLETED', output = complete_step.output
    where t.id = complete_step.step_id and t.attempt = complete_step.attempt and t.status in ('PENDING', 'TIMED_OUT');
  return found;
end;
$$;
comment on function throughline.complete_step(bigint, integer, jsonb) is $$
@behavior -*

Completes the given attempt of a step with its output, in one transaction with the status change
and everything it sets off (dependents enqueued, run counters, event). Returns false, changing
nothing, when that attempt is not current or the step has already ended.$$;

create function throughline.skip_step(step_id bigint, attempt integer, reason text)
returns boolean
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  perform throughline.lock_run_of_step(skip_step.step_id);
  update throughline.step_attempt a set outcome = 'NOT_APPLICABLE', ended_at = now(), error = skip_step.reason
    where a.step_id = skip_step.step_id and a.attempt = skip_step.attempt and a.outcome = 'RUNNING'
      and exists (select 1 from throughline.step t where t.id = a.step_id and t.attempt = a.attempt and t.status = 'PENDING');
  update throughline.step t set status = 'NOT_APPLICABLE', status_reason = nullif(btrim(skip_step.reason), '')
    where t.id = skip_step.step_id and t.attempt = skip_step.attempt and t.status = 'PENDING';
  return found;
end;
$$;
comment on function throughline.skip_step(bigint, integer, text) is $$
@behavior -*

Marks the given attempt’s step NOT_APPLICABLE with a reason; its dependents proceed as if it had
completed. Returns false, changing nothing, for a stale attempt or an ended step.$$;

create function throughline.retry_delay(step_id bigint, failed_attempt integer) returns interval
language sql volatile
set search_path to pg_catalog
begin atomic
  -- Exponential backoff with ±25 % jitter so that steps failing together do not retry together.
  select least(ws.backoff_max, ws.backoff_initial * power(ws.backoff_factor, greatest(retry_delay.failed_attempt - 1, 0)))
         * (0.75 + random() * 0.5)
  from throughline.step s
  join throughline.run r on r.token = s.token
  join throughline.workflow_step ws on ws.workflow = r.workflow and ws.step = s.step
  where s.id = retry_delay.step_id;
end;
comment on function throughline.retry_delay(bigint, integer) is $$
@behavior -*

Internal: how long to wait before the attempt after failed_attempt: backoff_initial ×
backoff_factor^(failed_attempt−1), capped at backoff_max, with ±25 % jitter.$$;

create function throughline.schedule_retry(step_id bigint, failed_attempt integer, reason text) returns void
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  delay interval := coalesce(throughline.retry_delay(schedule_retry.step_id, schedule_retry.failed_attempt), interval '0');
  s throughline.step;
begin
  update throughline.step t set attempt = t.attempt + 1, locked_by = null, lease_expires_at = null, ready_at = now() + delay
    where t.id = schedule_retry.step_id and t.attempt = schedule_retry.failed_attempt
    returning t.* into s;
  insert into throughline.event (token, step_id, step, kind, from_status, to_status, attempt, reason)
    values (s.token, s.id, s.step, 'STEP_RETRY_SCHEDULED', s.status, s.status, s.attempt, schedule_retry.reason);
  perform throughline.enqueue_step_jobs(array[s.id], now() + delay);
end;
$$;
comment on function throughline.schedule_retry(bigint, integer, text) is $$
@behavior -*

Internal: moves a step to its next attempt and enqueues it after the backoff delay.$$;

create function throughline.fail_step(step_id bigint, attempt integer, error text, retryable boolean default true)
returns text
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  s throughline.step;
  reason text := coalesce(nullif(btrim(fail_step.error), ''), 'Step failed without an error message');
begin
  perform throughline.lock_run_of_step(fail_step.step_id);
  select t.* into s from throughline.step t
    where t.id = fail_step.step_id and t.attempt = fail_step.attempt and t.status in ('PENDING', 'TIMED_OUT')
    for update;
  if s.id is null then
    return 'STALE';
  end if;
  if fail_step.retryable and s.attempt < s.max_attempts then
    update throughline.step_attempt a set outcome = 'RETRY', ended_at = now(), error = reason
      where a.step_id = s.id and a.attempt = s.attempt;
    perform throughline.schedule_retry(s.id, s.attempt, reason);
    return 'RETRY_SCHEDULED';
  end if;
  update throughline.step_attempt a set outcome = 'FAILED', ended_at = now(), error = reason
    where a.step_id = s.id and a.attempt = s.attempt;
  update throughline.step t set status = 'FAILED',
      failure_reason = case when fail_step.retryable and s.max_attempts > 1
                            then format('%s (attempt %s of %s)', reason, s.attempt, s.max_attempts)
                            else reason end
    where t.id = s.id;
  return 'FAILED';
end;
$$;
comment on function throughline.fail_step(bigint, integer, text, boolean) is $$
@behavior -*

Ends the given attempt of a step with an error. A retryable error schedules the next attempt with
backoff while attempts remain (RETRY_SCHEDULED); otherwise the step FAILS with the error as its
reason and everything open downstream is cancelled (FAILED). A stale attempt changes nothing (STALE).$$;

create function throughline.finish_step(
  step_id bigint,
  attempt integer,
  outcome text,
  output jsonb default null,
  reason text default null,
  worker_id text default null,
  lease interval default interval '30 seconds',
  claim_max integer default 0,
  tasks text[] default '{}'
) returns jsonb
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  the_token uuid;
  applied boolean;
  released record;
  claim jsonb;
  claimed jsonb := '[]'::jsonb;
  taken integer := 0;
  unclaimed bigint[] := '{}';
begin
  if finish_step.outcome is null or finish_step.outcome not in ('COMPLETED', 'NOT_APPLICABLE') then
    raise exception 'outcome must be COMPLETED or NOT_APPLICABLE, got %', coalesce(finish_step.outcome, 'null') using errcode = 'TL422';
  end if;
  if finish_step.claim_max > 0 and finish_step.worker_id is null then
    raise exception 'claiming released steps needs a worker_id' using errcode = 'TL422';
  end if;
  the_token := throughline.lock_run_of_step(finish_step.step_id);
  perform set_config('throughline.defer_enqueue', 'on', true);
  if finish_step.outcome = 'COMPLETED' then
    applied := throughline.complete_step(finish_step.step_id, finish_step.attempt, finish_step.output);
  else
    applied := throughline.skip_step(finish_step.step_id, finish_step.attempt, finish_step.reason);
  end if;
  perform set_config('throughline.defer_enqueue', '', true);

  -- The steps this transaction made runnable: claim up to claim_max, enqueue the others.
  for released in
    -- Only token and ready_at here: see the index notes in 001-schema.sql.
    select s.id, s.attempt, s.task_identifier, s.status, s.locked_by from throughline.step s
    where s.token = the_token and s.ready_at = now()
    order by s.id
  loop
    continue when released.status <> 'PENDING' or released.locked_by is not null;
    claim := null;
    if taken < greatest(finish_step.claim_max, 0) and released.task_identifier = any (finish_step.tasks) then
      claim := throughline.begin_step(released.id, released.attempt, finish_step.worker_id, finish_step.lease);
    end if;
    if claim is not null then
      claimed := claimed || jsonb_build_array(claim);
      taken := taken + 1;
    else
      unclaimed := unclaimed || released.id;
    end if;
  end loop;
  perform throughline.enqueue_step_jobs(unclaimed);
  return jsonb_build_object('applied', applied, 'claimed', claimed);
end;
$$;
comment on function throughline.finish_step(bigint, integer, text, jsonb, text, text, interval, integer, text[]) is $$
@behavior -*

For workers: ends the given attempt COMPLETED (with output) or NOT_APPLICABLE (with reason), exactly
as complete_step / skip_step do, and in the same transaction claims up to claim_max of the steps this
made runnable for worker_id (each as begin_step would; only steps whose task is in tasks, those the
worker can run), enqueueing the rest as Graphile Worker jobs.
Returns {applied, claimed: [what begin_step returns, per claimed step]}.$$;

--! split: 320-run_control.sql
-- What people do to runs: cancel one, retry a failed step with everything it had stopped.

create function throughline.cancel_run(token uuid, reason text default null) returns throughline.run
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
comment on function throughline.cancel_run(uuid, text) is $$
Cancels every step of the run that has not ended (PENDING or TIMED_OUT), with the reason. Steps that
ended keep their status. Cancelling an ended run changes nothing. Unknown token: TL404.$$;

create function throughline.retry_step(step_id bigint, reason text default null) returns throughline.run
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
comment on function throughline.retry_step(bigint, text) is $$
Retries a FAILED or CANCELLED step together with everything downstream of it that did not complete:
records the retry (throughline.step_retry), reopens those steps PENDING with a fresh attempt budget,
and enqueues the ones whose dependencies are satisfied. Refused (TL409) for a step that has not
failed or been cancelled, or while another run of the same subject is pending.$$;

--! split: 400-maintenance.sql
-- Maintenance: reclaim attempts whose worker died, time out steps that make no progress, purge old
-- runs. Each function takes the point in time it works to (default now()), so it can be driven by a
-- scheduler or a test, and is safe to run from many instances at once (SKIP LOCKED, fenced updates).

-- Lost doorbells. A job can be taken by a worker that never gets to begin the step: Postgres
-- restarted between Graphile Worker’s claim and our begin_step, and Graphile Worker could not record
-- the failure either, so the job stays locked for its 4 hours and the step, ready but never claimed,
-- has no lease of ours to expire. Jobs are now keyed by (step, attempt), and the lease sweep also
-- rings again for a ready step that nobody claimed within lost_after while its job is missing or
-- locked for longer than that (a live worker begins a step milliseconds after taking its job).

create function throughline.reclaim_expired_leases(at timestamptz default now(), max_steps integer default 100,
                                                              lost_after interval default interval '30 seconds')
returns integer
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  candidate record;
  s throughline.step;
  reclaimed integer := 0;
  reason text;
begin
  for candidate in
    select t.id, t.token, t.attempt from throughline.step t
    where t.status in ('PENDING', 'TIMED_OUT') and t.lease_expires_at < reclaim_expired_leases.at
    order by t.id
    limit reclaim_expired_leases.max_steps
  loop
    -- Lock order: run, then step. A busy run is left for the next sweep rather than waited for.
    perform 1 from throughline.run r where r.token = candidate.token for no key update skip locked;
    continue when not found;
    select t.* into s from throughline.step t
      where t.id = candidate.id and t.attempt = candidate.attempt
        and t.status in ('PENDING', 'TIMED_OUT') and t.lease_expires_at < reclaim_expired_leases.at
      for update;
    continue when s.id is null;
    reason := format('Lease expired: worker %s stopped heartbeating during attempt %s', s.locked_by, s.attempt);
    update throughline.step_attempt a set outcome = 'LEASE_EXPIRED', ended_at = now(), error = reason
      where a.step_id = s.id and a.attempt = s.attempt and a.outcome = 'RUNNING';
    if s.attempt < s.max_attempts then
      perform throughline.schedule_retry(s.id, s.attempt, reason);
    else
      update throughline.step t set status = 'FAILED', failure_reason = format('%s (attempt %s of %s)', reason, s.attempt, s.max_attempts)
        where t.id = s.id;
    end if;
    reclaimed := reclaimed + 1;
  end loop;

  -- Lost doorbells: ready, unclaimed, and no live job for the current attempt.
  for candidate in
    select t.id, t.token, t.attempt from throughline.step t
    where t.status in ('PENDING', 'TIMED_OUT') and t.locked_by is null
      and t.ready_at < reclaim_expired_leases.at - reclaim_expired_leases.lost_after
      and not exists (
        select 1 from graphile_worker.jobs j
        where j.key = format('throughline:step:%s:%s', t.id, t.attempt)
          and (j.locked_at is null or j.locked_at > reclaim_expired_leases.at - reclaim_expired_leases.lost_after))
    order by t.id
    limit reclaim_expired_leases.max_steps
  loop
    perform 1 from throughline.run r where r.token = candidate.token for no key update skip locked;
    continue when not found;
    perform 1 from throughline.step t
      where t.id = candidate.id and t.attempt = candidate.attempt and t.locked_by is null and t.status in ('PENDING', 'TIMED_OUT')
      for update;
    continue when not found;
    perform throughline.enqueue_step_jobs(array[candidate.id]);
    reclaimed := reclaimed + 1;
  end loop;
  return reclaimed;
end;
$$;
comment on function throughline.reclaim_expired_leases(timestamptz, integer, interval) is $$
Finds attempts whose lease expired before `at` (their worker stopped heartbeating: crashed, killed,
partitioned) and gives the step its next attempt at once, or FAILS it when no attempts remain. The
dead attempt can no longer write: its attempt number is no longer current. Returns how many were
reclaimed (at most max_steps per call). Also enqueues again a ready step that no worker claimed
within lost_after while its job is missing or locked that long (a lost doorbell); such steps count too.$$;

create function throughline.time_out_steps(at timestamptz default now(), max_steps integer default 1000)
returns integer
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  candidate record;
  changed integer := 0;
begin
  -- Second stage first, so that a step takes two maintenance passes to fail (hyades: PENDING →
  -- TIMED_OUT, and only after another timeout period without progress, TIMED_OUT → FAILED).
  for candidate in
    select t.id, t.token, t.status from throughline.step t
    where (t.status = 'TIMED_OUT'
           and greatest(t.updated_at, t.heartbeat_at) + t.timeout < time_out_steps.at)
       or (t.status = 'PENDING' and t.ready_at <= time_out_steps.at
           -- Progress is: becoming runnable, an attempt starting, a heartbeat. A step that is not
           -- runnable yet (ready_at NULL: upstream still working, or the run waits for its subject)
           -- never times out.
           and greatest(t.ready_at, t.updated_at, t.heartbeat_at) + t.timeout < time_out_steps.at)
    order by (t.status = 'TIMED_OUT') desc, t.id
    limit time_out_steps.max_steps
  loop
    perform 1 from throughline.run r where r.token = candidate.token for no key update skip locked;
    continue when not found;
    if candidate.status = 'TIMED_OUT' then
      update throughline.step t set status = 'FAILED', failure_reason = 'Timed out'
        where t.id = candidate.id and t.status = 'TIMED_OUT'
          and greatest(t.updated_at, t.heartbeat_at) + t.timeout < time_out_steps.at;
    else
      update throughline.step t set status = 'TIMED_OUT',
          status_reason = format('No progress for %s', t.timeout)
        where t.id = candidate.id and t.status = 'PENDING' and t.ready_at <= time_out_steps.at
          and greatest(t.ready_at, t.updated_at, t.heartbeat_at) + t.timeout < time_out_steps.at;
    end if;
    changed := changed + (case when found then 1 else 0 end);
  end loop;
  return changed;
end;
$$;
comment on function throughline.time_out_steps(timestamptz, integer) is $$
hyades’ timeout rule, corrected: a runnable PENDING step without progress (runnable since, attempt
start, heartbeat) for its timeout becomes TIMED_OUT, its dependents untouched; a TIMED_OUT step
without progress for another timeout becomes FAILED "Timed out" and cancels what is open
downstream, all with one updated_at. Steps still heartbeating, and steps not yet runnable because
upstream work is slow, never time out. A TIMED_OUT step may still complete. Returns how many steps
changed.$$;

create function throughline.purge_runs(updated_before timestamptz, batch_size integer default 1000)
returns integer
language sql volatile
set search_path to pg_catalog
begin atomic
  -- Retention: whole runs only; never one still processing; strict < against the cutoff.
  with doomed as (
    select r.token from throughline.run r
    where r.status <> 'PENDING' and r.updated_at < purge_runs.updated_before
      and not exists (select 1 from throughline.step s
                      where s.token = r.token
                        and (s.status in ('PENDING', 'TIMED_OUT') or s.updated_at >= purge_runs.updated_before))
    order by r.updated_at
    limit purge_runs.batch_size
    for update of r skip locked
  ), deleted as (
    delete from throughline.run r using doomed where r.token = doomed.token returning 1
  )
  select count(*)::integer from deleted;
end;
comment on function throughline.purge_runs(timestamptz, integer) is $$
Deletes up to batch_size whole runs (steps, events, attempts with them) whose steps have all ended
and whose last update is strictly before updated_before. A run with any PENDING or TIMED_OUT step,
or any update at or after the cutoff, is kept. Returns how many runs were deleted; call again until
it returns less than batch_size.$$;

--! split: 500-events.sql
-- Reading the event log from a cursor. A cursor is a pg_snapshot: "what this reader has seen" is
-- exactly the set of transactions visible in it. Sequence numbers alone cannot be cursors: a
-- transaction that took seq 10 may commit after one that took seq 11, and a reader that moved past
-- 11 would never see 10. With snapshots, each read returns the events of transactions that have
-- committed since the previous read, whatever their order, and the new cursor is the snapshot the
-- read itself used. No gap, no duplicate.

create function throughline.current_cursor() returns text
language sql stable
set search_path to pg_catalog
return pg_current_snapshot()::text;
comment on function throughline.current_cursor() is $$
A cursor for "now": read it in the same statement or transaction as a state snapshot, then pass it
to events_after to get every change after that state.$$;

create function throughline.events_after(after text, token uuid default null)
returns table (next_cursor text, events jsonb)
language sql stable
set search_path to pg_catalog
begin atomic
  -- One statement, one snapshot: the events read and the cursor returned describe the same moment.
  select pg_current_snapshot()::text,
         coalesce(jsonb_agg(jsonb_build_object(
           'seq', e.seq, 'token', e.token, 'stepId', e.step_id, 'step', e.step, 'kind', e.kind,
           'fromStatus', e.from_status, 'toStatus', e.to_status, 'attempt', e.attempt,
           'reason', e.reason, 'at', e.at) order by e.seq), '[]'::jsonb)
  from throughline.event e
  where e.xid >= pg_snapshot_xmin(events_after.after::pg_snapshot)
    and not pg_visible_in_snapshot(e.xid, events_after.after::pg_snapshot)
    and (events_after.token is null or e.token = events_after.token);
end;
comment on function throughline.events_after(text, uuid) is $$
Every event committed after the cursor `after` (optionally of one run), in transition order, and the
cursor to pass next time. Cursors come from current_cursor or a previous call; a malformed cursor is
an error (22P02).$$;

--! split: 600-register_workflow.sql
-- Workflow definitions arrive from TypeScript (src/workflows/) at start; the database checks them
-- again, so a definition written straight in SQL obeys the same rules.

create function throughline.register_workflow(
  name text,
  steps jsonb,
  description text default '',
  serialize_by_subject boolean default true,
  max_input_bytes integer default 10485760,
  subject_key text default null
) returns throughline.workflow
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  wf throughline.workflow;
  new_definition jsonb := jsonb_build_object('steps', register_workflow.steps, 'description', register_workflow.description,
                                         'serializeBySubject', register_workflow.serialize_by_subject,
                                         'maxInputBytes', register_workflow.max_input_bytes,
                                         'subjectKey', register_workflow.subject_key);
  bad text;
begin
  -- Several instances start at once: one registration per workflow at a time.
  perform pg_advisory_xact_lock(hashtextextended('throughline:workflow:' || register_workflow.name, 0));

  -- GUARD: a non-empty array of steps with unique names, dependencies on earlier steps only
  -- (which also rules out cycles), and sane policies.
  if jsonb_typeof(register_workflow.steps) is distinct from 'array' or jsonb_array_length(register_workflow.steps) = 0 then
    raise exception 'workflow "%" needs a non-empty array of steps', register_workflow.name using errcode = 'TL422';
  end if;
  select format('step %s depends on %s, which is not an earlier step', x.value ->> 'step', dep)
    into bad
    from jsonb_array_elements(register_workflow.steps) with ordinality as x(value, pos)
    cross join lateral jsonb_array_elements_text(coalesce(x.value -> 'dependsOn', '[]')) as dep
    where not exists (select 1 from jsonb_array_elements(register_workflow.steps) with ordinality as y(value, pos)
                      where y.value ->> 'step' = dep and y.pos < x.pos)
    limit 1;
  if bad is not null then
    raise exception 'workflow "%": %', register_workflow.name, bad using errcode = 'TL422';
  end if;
  select format('step %s appears more than once', x.value ->> 'step') into bad
    from jsonb_array_elements(register_workflow.steps) as x(value)
    group by x.value ->> 'step' having count(*) > 1 limit 1;
  if bad is not null then
    raise exception 'workflow "%": %', register_workflow.name, bad using errcode = 'TL422';
  end if;

  select w.* into wf from throughline.workflow w where w.name = register_workflow.name;
  if wf.name is not null and wf.definition = new_definition then
    return wf; -- unchanged: keep the version
  end if;

  insert into throughline.workflow as w (name, description, serialize_by_subject, subject_key, max_input_bytes, definition)
    values (register_workflow.name, coalesce(register_workflow.description, ''), register_workflow.serialize_by_subject,
            register_workflow.subject_key, register_workflow.max_input_bytes, new_definition)
    on conflict (name) do update set
      version = w.version + 1,
      description = excluded.description,
      serialize_by_subject = excluded.serialize_by_subject,
      subject_key = excluded.subject_key,
      max_input_bytes = excluded.max_input_bytes,
      definition = excluded.definition,
      updated_at = now()
    returning w.* into wf;

  delete from throughline.workflow_step ws where ws.workflow = register_workflow.name;
  insert into throughline.workflow_step
      (workflow, step, position, task_identifier, depends_on, timeout, max_attempts, backoff_initial, backoff_factor, backoff_max)
    select register_workflow.name,
           x.value ->> 'step',
           x.pos,
           coalesce(x.value ->> 'task', lower(x.value ->> 'step')),
           coalesce(array(select jsonb_array_elements_text(x.value -> 'dependsOn')), '{}'),
           coalesce(make_interval(secs => (x.value ->> 'timeoutSeconds')::double precision), interval '60 minutes'),
           coalesce((x.value ->> 'maxAttempts')::integer, 6),
           coalesce(make_interval(secs => (x.value ->> 'backoffInitialSeconds')::double precision), interval '5 seconds'),
           coalesce((x.value ->> 'backoffFactor')::numeric, 1.5),
           coalesce(make_interval(secs => (x.value ->> 'backoffMaxSeconds')::double precision), interval '30 minutes')
    from jsonb_array_elements(register_workflow.steps) with ordinality as x(value, pos);
  return wf;
end;
$$;
comment on function throughline.register_workflow(text, jsonb, text, boolean, integer, text) is $$
@behavior -*

Creates or updates a workflow definition. steps is an array in topological order of
{step, task, dependsOn[], timeoutSeconds, maxAttempts, backoffInitialSeconds, backoffFactor,
backoffMaxSeconds}; unknown or later dependencies, duplicate names and bad values are refused
(TL422). The version rises only when the definition changes. Runs already started keep the steps
they were created with.$$;

--! split: 700-reference_domain.sql
-- Domain data of the reference workflows (bom_upload, reanalysis): the components a BOM declared and
-- the metrics computed for a project. Small on purpose: they exist so the reference steps do real,
-- checkable work. Writes are idempotent (an attempt may run twice: at-least-once execution).

create table throughline.component (
  project text not null,
  ordinal integer not null check (ordinal >= 0),
  token uuid not null,
  bom_ref text,
  type text not null,
  name text not null,
  version text,
  purl text,
  primary key (project, ordinal)
);
create index component_purl_idx on throughline.component (purl);
comment on table throughline.component is $$
@behavior -insert -update -delete

Components of each project as declared by its latest processed BOM (written by BOM_PROCESSING).$$;
comment on column throughline.component.project is 'The project (the run’s subject).';
comment on column throughline.component.ordinal is 'Position of the component in the BOM.';
comment on column throughline.component.token is 'The run whose BOM declared it.';
comment on column throughline.component.bom_ref is 'The component’s bom-ref, if the BOM gave one.';
comment on column throughline.component.type is 'CycloneDX component type (library, framework, application, …).';
comment on column throughline.component.name is 'Component name.';
comment on column throughline.component.version is 'Component version, if given.';
comment on column throughline.component.purl is 'Package URL, if given; what vulnerability analysis matches on.';

create table throughline.project_metrics (
  project text primary key,
  token uuid not null,
  components integer not null,
  vulnerabilities integer not null,
  critical integer not null,
  policy_violations integer not null,
  updated_at timestamptz not null default now()
);
comment on table throughline.project_metrics is $$
@behavior -insert -update -delete

Latest metrics of each project (written by METRICS_UPDATE).$$;
comment on column throughline.project_metrics.project is 'The project.';
comment on column throughline.project_metrics.token is 'The run that computed them.';
comment on column throughline.project_metrics.components is 'Number of components.';
comment on column throughline.project_metrics.vulnerabilities is 'Number of vulnerability findings.';
comment on column throughline.project_metrics.critical is 'Findings of CRITICAL severity.';
comment on column throughline.project_metrics.policy_violations is 'Policy violations.';
comment on column throughline.project_metrics.updated_at is 'When they were computed.';

create function throughline.record_components(project text, token uuid, components jsonb) returns integer
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  n integer;
begin
  if jsonb_typeof(record_components.components) is distinct from 'array' then
    raise exception 'components must be a JSON array' using errcode = 'TL422';
  end if;
  -- Replace, not append: the project’s components are those of its latest BOM, and a repeated
  -- attempt writes the same rows again.
  delete from throughline.component c where c.project = record_components.project;
  insert into throughline.component (project, ordinal, token, bom_ref, type, name, version, purl)
    select record_components.project, (x.pos - 1)::integer, record_components.token,
           x.value ->> 'bomRef', x.value ->> 'type', x.value ->> 'name', x.value ->> 'version', x.value ->> 'purl'
    from jsonb_array_elements(record_components.components) with ordinality as x(value, pos);
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function throughline.record_components(text, uuid, jsonb) is $$
@behavior -*

Replaces a project’s components with those of a processed BOM ([{bomRef, type, name, version, purl}]).
Returns how many were recorded.$$;

create function throughline.record_project_metrics(project text, token uuid, components integer, vulnerabilities integer,
                                                   critical integer, policy_violations integer)
returns void
language sql volatile
set search_path to pg_catalog
begin atomic
  insert into throughline.project_metrics as m (project, token, components, vulnerabilities, critical, policy_violations)
    values (record_project_metrics.project, record_project_metrics.token, record_project_metrics.components,
            record_project_metrics.vulnerabilities, record_project_metrics.critical, record_project_metrics.policy_violations)
    on conflict (project) do update set
      token = excluded.token, components = excluded.components, vulnerabilities = excluded.vulnerabilities,
      critical = excluded.critical, policy_violations = excluded.policy_violations, updated_at = now();
end;
comment on function throughline.record_project_metrics(text, uuid, integer, integer, integer, integer) is $$
@behavior -*

Stores a project’s latest metrics (idempotent upsert).$$;

--! split: 800-graphql_api.sql
-- What the GraphQL API (server/, PostGraphile v5) needs beyond the tables and the contract functions:
-- a run search with label and time filters, and the reads behind the change subscriptions. The
-- subscription reads are internal (@behavior -*): clients reach them only through
-- Subscription.runChanges / runsChanges (server/plugins/RunChangesSubscriptionPlugin.ts), which
-- depends on the JSON shapes below: change both together.

drop function if exists throughline.changes_after(text, uuid, text, text);
drop function if exists throughline.runs_snapshot(uuid, text, text, integer);
drop function if exists throughline.search_runs(text, text, text, jsonb, timestamptz, timestamptz);

create function throughline.search_runs(
  workflow text default null,
  status text default null,
  subject text default null,
  labels jsonb default null,
  created_after timestamptz default null,
  created_before timestamptz default null
) returns setof throughline.run
language sql stable
set search_path to pg_catalog
begin atomic
  select r.* from throughline.run r
  where (search_runs.workflow is null or r.workflow = search_runs.workflow)
    and (search_runs.status is null or r.status = search_runs.status)
    and (search_runs.subject is null or r.subject = search_runs.subject)
    and (search_runs.labels is null or r.labels @> search_runs.labels)
    and (search_runs.created_after is null or r.created_at >= search_runs.created_after)
    and (search_runs.created_before is null or r.created_at < search_runs.created_before)
  order by r.created_at desc, r.token;
end;
comment on function throughline.search_runs(text, text, text, jsonb, timestamptz, timestamptz) is $$
Runs matching every filter given (an omitted filter matches all), newest first: by workflow, rolled-up
status (PENDING, COMPLETED, FAILED, CANCELLED), subject, labels (the run’s labels contain this JSON
object, e.g. {"branch": "main"}) and creation time (created_after inclusive, created_before
exclusive).$$;

create function throughline.runs_snapshot(token uuid default null, workflow text default null, subject text default null,
                                          max_runs integer default 100)
returns table (cursor text, runs jsonb)
language sql stable
set search_path to pg_catalog
begin atomic
  -- One statement, one snapshot: the runs read and the cursor returned describe the same moment, so
  -- changes_after(cursor) continues exactly where this state ends.
  select pg_current_snapshot()::text,
         coalesce((
           select jsonb_agg(x.run order by x.created_at desc, x.token)
           from (
             select r.created_at, r.token, jsonb_build_object(
                 'token', r.token, 'workflow', r.workflow, 'subject', r.subject, 'status', r.status,
                 'labels', r.labels, 'admittedAt', r.admitted_at, 'createdAt', r.created_at,
                 'updatedAt', r.updated_at, 'completedAt', r.completed_at, 'stepsTotal', r.steps_total,
                 'stepsOpen', r.steps_open, 'stepsFailed', r.steps_failed, 'stepsCancelled', r.steps_cancelled,
                 'isProcessing', r.steps_open > 0,
                 'steps', coalesce((
                   select jsonb_agg(jsonb_build_object(
                       'id', s.id::text, 'parentStepId', s.parent_step_id::text, 'step', s.step, 'status', s.status,
                       'startedAt', s.started_at, 'updatedAt', s.updated_at, 'failureReason', s.failure_reason,
                       'statusReason', s.status_reason, 'attempt', s.attempt, 'dependsOn', to_jsonb(s.depends_on))
                     order by s.id)
                   from throughline.step s where s.token = r.token), '[]'::jsonb)) as run
             from throughline.run r
             where (runs_snapshot.token is null or r.token = runs_snapshot.token)
               and (runs_snapshot.workflow is null or r.workflow = runs_snapshot.workflow)
               and (runs_snapshot.subject is null or r.subject = runs_snapshot.subject)
             order by r.created_at desc, r.token
             limit greatest(least(runs_snapshot.max_runs, 1000), 0)
           ) x), '[]'::jsonb);
end;
comment on function throughline.runs_snapshot(uuid, text, text, integer) is $$
@behavior -*

Internal (GraphQL subscriptions): the current state of one run (token) or of the newest max_runs
runs matching workflow and subject, with their steps, and the cursor of that state, read in one
statement. Pass the cursor to changes_after for every change since.$$;

create function throughline.changes_after(after text, token uuid default null, workflow text default null,
                                          subject text default null)
returns table (next_cursor text, events jsonb)
language sql stable
set search_path to pg_catalog
begin atomic
  -- As throughline.events_after (500-events.sql), plus what a server needs to fan one read out to
  -- many subscribers: the writing transaction (xid, to tell which events a subscriber’s own snapshot
  -- already covered) and the run’s workflow and subject (to filter without another read).
  select pg_current_snapshot()::text,
         coalesce(jsonb_agg(jsonb_build_object(
           'seq', e.seq::text, 'xid', e.xid::text, 'token', e.token, 'workflow', r.workflow, 'subject', r.subject,
           'stepId', e.step_id::text, 'step', e.step, 'kind', e.kind, 'fromStatus', e.from_status,
           'toStatus', e.to_status, 'attempt', e.attempt, 'reason', e.reason, 'at', e.at) order by e.seq), '[]'::jsonb)
  from throughline.event e
  join throughline.run r on r.token = e.token
  where e.xid >= pg_snapshot_xmin(changes_after.after::pg_snapshot)
    and not pg_visible_in_snapshot(e.xid, changes_after.after::pg_snapshot)
    and (changes_after.token is null or e.token = changes_after.token)
    and (changes_after.workflow is null or r.workflow = changes_after.workflow)
    and (changes_after.subject is null or r.subject = changes_after.subject);
end;
comment on function throughline.changes_after(text, uuid, text, text) is $$
@behavior -*

Internal (GraphQL subscriptions): every event committed after the cursor `after`, optionally only of
one run, workflow or subject, in transition order, each with its transaction id, workflow and
subject; and the cursor to pass next time.$$;

-- Relation names in GraphQL. The foreign keys are named after their columns (token, workflow), which
-- PostGraphile cannot shorten by itself (it would say stepsByToken, workflowByWorkflow).
comment on constraint step_token_fkey on throughline.step is $$
@fieldName run
@foreignFieldName steps

Every step belongs to one run; its steps are deleted with it.$$;
comment on constraint step_parent_step_id_fkey on throughline.step is $$
@fieldName parentStep
@foreignFieldName childSteps

The hyades tree: a step hangs under its first dependency.$$;
comment on constraint run_workflow_fkey on throughline.run is $$
@fieldName definition
@foreignFieldName runs

The workflow definition a run executes.$$;
comment on constraint workflow_step_workflow_fkey on throughline.workflow_step is $$
@fieldName definition
@foreignFieldName steps

The workflow a step definition belongs to.$$;
comment on constraint event_token_fkey on throughline.event is $$
@fieldName run
@foreignFieldName events

The run whose transition an event records.$$;
comment on constraint step_attempt_step_id_fkey on throughline.step_attempt is $$
@fieldName step
@foreignFieldName attempts

The step an attempt ran.$$;
comment on constraint step_retry_step_id_fkey on throughline.step_retry is $$
@fieldName step
@foreignFieldName retries

The step a retry reopened.$$;

--! split: 810-webhooks.sql
-- Webhook notifications: persist first, then notify (anchors §2, StackRox #21225), through a
-- transactional outbox (anchors §1, dex).
--
-- A state change appends to throughline.event; a deferred trigger on that table writes one
-- throughline.webhook_delivery row per matching webhook and enqueues a Graphile Worker job, all in the
-- transaction of the change. The job becomes visible only when that transaction commits, so a
-- receiver hears of a run only after it is committed, and a rolled-back change notifies nobody.
-- Delivery is its own job (src/runtime/webhookDelivery.ts): a failing, slow or hanging receiver
-- never fails, retries, delays or rolls back a step or a run. Attempts, backoff and the final state
-- live in our tables; the job is only a doorbell carrying {deliveryId}.

create table throughline.webhook (
  id bigint generated always as identity primary key,
  url text not null check (url ~* '^https?://[^/?#[:space:]]+([/?#][^[:space:]]*)?$' and length(url) <= 2048),
  events text[] not null check (
    cardinality(events) > 0
    and events <@ array['RUN_COMPLETED', 'RUN_FAILED', 'RUN_CANCELLED', 'STEP_FAILED']::text[]),
  workflow text,
  subject text check (subject is null or length(subject) between 1 and 256),
  secret text not null check (length(secret) >= 16),
  enabled boolean not null default true,
  description text not null default '',
  timeout interval not null default interval '10 seconds'
    check (timeout > interval '0' and timeout <= interval '5 minutes'),
  max_attempts integer not null default 8 check (max_attempts between 1 and 100),
  backoff_initial interval not null default interval '5 seconds' check (backoff_initial >= interval '0'),
  backoff_factor numeric not null default 2 check (backoff_factor >= 1),
  backoff_max interval not null default interval '1 hour' check (backoff_max >= interval '0'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- The outbox trigger’s lookup: enabled webhooks by event (an empty index when there are none).
create index webhook_enabled_events_idx on throughline.webhook using gin (events) where enabled;
comment on table throughline.webhook is $$
@behavior -*

A webhook subscription: Throughline POSTs a signed JSON document to url for each chosen event of the
runs that match its filters. Created with throughline.create_webhook, removed with
throughline.delete_webhook. Not exposed through GraphQL until access control covers it (the url and
secret are sensitive).$$;
comment on column throughline.webhook.id is 'Webhook identity.';
comment on column throughline.webhook.url is 'Where deliveries are POSTed: an absolute http:// or https:// URL.';
comment on column throughline.webhook.events is
  'The events delivered: any of RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED (a run ended with that status) and STEP_FAILED (a step ended FAILED).';
comment on column throughline.webhook.workflow is 'Only runs of this workflow, when set.';
comment on column throughline.webhook.subject is 'Only runs about this subject (e.g. a project), when set.';
comment on column throughline.webhook.secret is $$
@behavior -*

Key of the HMAC-SHA256 signature sent as X-Throughline-Signature: sha256=<hex of the body’s HMAC>.$$;
comment on column throughline.webhook.enabled is 'Disabled webhooks get no new deliveries, and their pending ones end FAILED.';
comment on column throughline.webhook.description is 'What the webhook is for, for people.';
comment on column throughline.webhook.timeout is 'How long one delivery attempt may take, answer included, before it counts as failed.';
comment on column throughline.webhook.max_attempts is 'Attempts per delivery before it ends FAILED.';
comment on column throughline.webhook.backoff_initial is 'Delay before the second attempt.';
comment on column throughline.webhook.backoff_factor is 'Each further retry waits this many times longer than the one before.';
comment on column throughline.webhook.backoff_max is 'Longest delay between attempts.';
comment on column throughline.webhook.created_at is 'When the webhook was created.';
comment on column throughline.webhook.updated_at is 'When it last changed.';

create table throughline.webhook_delivery (
  id bigint generated always as identity primary key,
  webhook_id bigint not null references throughline.webhook (id) on delete cascade,
  event_seq bigint not null,
  event text not null check (event in ('RUN_COMPLETED', 'RUN_FAILED', 'RUN_CANCELLED', 'STEP_FAILED')),
  token uuid not null references throughline.run (token) on delete cascade,
  payload jsonb not null check (jsonb_typeof(payload) = 'object'),
  state text not null default 'PENDING' check (state in ('PENDING', 'DELIVERED', 'FAILED')),
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null check (max_attempts >= 1),
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_status_code integer,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  delivered_at timestamptz,
  unique (webhook_id, event_seq),
  check ((state = 'DELIVERED') = (delivered_at is not null))
);
create index webhook_delivery_token_idx on throughline.webhook_delivery (token);
create index webhook_delivery_pending_idx on throughline.webhook_delivery (next_attempt_at) where state = 'PENDING';
comment on table throughline.webhook_delivery is $$
@behavior -*

The outbox: one row per (webhook, event), written in the transaction that made the change, then
delivered by the throughline_webhook_delivery job after commit. Deleted with its run (retention) or
its webhook.$$;
comment on column throughline.webhook_delivery.id is 'Delivery identity, sent as X-Throughline-Delivery (receivers deduplicate on it).';
comment on column throughline.webhook_delivery.webhook_id is 'The webhook.';
comment on column throughline.webhook_delivery.event_seq is 'The throughline.event row that caused it.';
comment on column throughline.webhook_delivery.event is 'RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED or STEP_FAILED.';
comment on column throughline.webhook_delivery.token is 'The run.';
comment on column throughline.webhook_delivery.payload is 'The document sent (without deliveryId, added when sending), as of the commit of the change.';
comment on column throughline.webhook_delivery.state is 'PENDING (to be tried, or being tried), DELIVERED (a 2xx answer) or FAILED (attempts exhausted, or webhook disabled).';
comment on column throughline.webhook_delivery.attempts is 'Attempts begun so far.';
comment on column throughline.webhook_delivery.max_attempts is 'Attempts allowed (from the webhook when the delivery was written).';
comment on column throughline.webhook_delivery.next_attempt_at is 'When the next attempt may begin.';
comment on column throughline.webhook_delivery.locked_until is 'While an attempt runs: when it is presumed lost (timeout plus a margin).';
comment on column throughline.webhook_delivery.last_status_code is 'HTTP status of the last answer, if there was one.';
comment on column throughline.webhook_delivery.last_error is 'Why the last attempt failed.';
comment on column throughline.webhook_delivery.created_at is 'When the change was made (transaction time).';
comment on column throughline.webhook_delivery.updated_at is 'When the delivery last changed.';
comment on column throughline.webhook_delivery.delivered_at is 'When a receiver accepted it.';

create table throughline.webhook_delivery_attempt (
  delivery_id bigint not null references throughline.webhook_delivery (id) on delete cascade,
  attempt integer not null check (attempt >= 1),
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  outcome text not null default 'RUNNING' check (outcome in ('RUNNING', 'DELIVERED', 'FAILED', 'LOST')),
  status_code integer,
  error text,
  duration_ms integer check (duration_ms >= 0),
  response_excerpt text,
  retry_at timestamptz,
  primary key (delivery_id, attempt)
);
comment on table throughline.webhook_delivery_attempt is $$
@behavior -*

Every delivery attempt: when, how long, the answer or the error, and when the next one was scheduled.$$;
comment on column throughline.webhook_delivery_attempt.delivery_id is 'The delivery.';
comment on column throughline.webhook_delivery_attempt.attempt is 'The attempt number (1-based).';
comment on column throughline.webhook_delivery_attempt.started_at is 'When the attempt was claimed.';
comment on column throughline.webhook_delivery_attempt.ended_at is 'When its result was recorded; NULL while running or if lost.';
comment on column throughline.webhook_delivery_attempt.outcome is
  'RUNNING, DELIVERED (2xx), FAILED (other status, timeout, connection or protocol error) or LOST (the worker never reported back).';
comment on column throughline.webhook_delivery_attempt.status_code is 'HTTP status of the answer, if one came.';
comment on column throughline.webhook_delivery_attempt.error is 'What went wrong, for a failed attempt.';
comment on column throughline.webhook_delivery_attempt.duration_ms is 'Time from sending the request to the end of the answer (or the error), in milliseconds.';
comment on column throughline.webhook_delivery_attempt.response_excerpt is 'The first bytes of the answer body, for diagnosis.';
comment on column throughline.webhook_delivery_attempt.retry_at is 'When the next attempt was scheduled, if this one failed and attempts remained.';

-- ---------------------------------------------------------------------------------------------
-- Managing webhooks

create function throughline.webhook_events() returns text[]
language sql immutable parallel safe
set search_path to pg_catalog
return array['RUN_COMPLETED', 'RUN_FAILED', 'RUN_CANCELLED', 'STEP_FAILED']::text[];
comment on function throughline.webhook_events() is $$
@behavior -*

The events a webhook may subscribe to.$$;

create function throughline.create_webhook(
  url text,
  events text[],
  workflow text default null,
  subject text default null,
  secret text default null,
  enabled boolean default true,
  description text default '',
  timeout interval default interval '10 seconds',
  max_attempts integer default 8,
  backoff_initial interval default interval '5 seconds',
  backoff_factor numeric default 2,
  backoff_max interval default interval '1 hour'
) returns throughline.webhook
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  unknown text[];
  wanted text[];
  result throughline.webhook;
begin
  -- GUARD: a URL we can POST to.
  if create_webhook.url is null
     or create_webhook.url !~* '^https?://[^/?#[:space:]]+([/?#][^[:space:]]*)?$'
     or length(create_webhook.url) > 2048 then
    raise exception 'webhook url must be an absolute http:// or https:// URL without spaces (at most 2048 characters), got %',
      coalesce('"' || create_webhook.url || '"', 'NULL')
      using errcode = 'TL422', hint = 'For example https://ci.example.com/hooks/throughline';
  end if;

  -- GUARD: known events, at least one.
  if coalesce(cardinality(create_webhook.events), 0) = 0 then
    raise exception 'webhook events must name at least one of %', array_to_string(throughline.webhook_events(), ', ')
      using errcode = 'TL422';
  end if;
  select array_agg(distinct e order by e) filter (where e is null or not (e = any (throughline.webhook_events()))),
         array_agg(distinct e order by e) filter (where e = any (throughline.webhook_events()))
    into unknown, wanted
    from unnest(create_webhook.events) as e;
  if unknown is not null then
    raise exception 'unknown webhook event %; expected any of %',
      array_to_string(array(select coalesce('"' || u || '"', 'NULL') from unnest(unknown) u), ', '),
      array_to_string(throughline.webhook_events(), ', ')
      using errcode = 'TL422';
  end if;

  -- GUARD: filters and policy.
  if create_webhook.workflow is not null
     and not exists (select 1 from throughline.workflow w where w.name = create_webhook.workflow) then
    raise exception 'unknown workflow "%" for webhook filter', create_webhook.workflow using errcode = 'TL422';
  end if;
  if create_webhook.subject is not null and length(create_webhook.subject) not between 1 and 256 then
    raise exception 'webhook subject filter must be 1 to 256 characters' using errcode = 'TL422';
  end if;
  if create_webhook.secret is not null and length(create_webhook.secret) < 16 then
    raise exception 'webhook secret must be at least 16 characters (or NULL to generate one)' using errcode = 'TL422';
  end if;
  if create_webhook.timeout is null or create_webhook.timeout <= interval '0' or create_webhook.timeout > interval '5 minutes' then
    raise exception 'webhook timeout must be more than 0 and at most 5 minutes, got %', create_webhook.timeout using errcode = 'TL422';
  end if;
  if create_webhook.max_attempts is null or create_webhook.max_attempts not between 1 and 100 then
    raise exception 'webhook max_attempts must be between 1 and 100, got %', create_webhook.max_attempts using errcode = 'TL422';
  end if;
  if create_webhook.backoff_initial is null or create_webhook.backoff_initial < interval '0'
     or create_webhook.backoff_max is null or create_webhook.backoff_max < interval '0'
     or create_webhook.backoff_factor is null or create_webhook.backoff_factor < 1 then
    raise exception 'webhook backoff needs backoff_initial >= 0, backoff_max >= 0 and backoff_factor >= 1' using errcode = 'TL422';
  end if;

  insert into throughline.webhook (url, events, workflow, subject, secret, enabled, description, timeout,
                                   max_attempts, backoff_initial, backoff_factor, backoff_max)
  values (create_webhook.url, wanted, create_webhook.workflow, create_webhook.subject,
          -- 2 × 122 random bits from the server’s strong random source when none is given.
          coalesce(create_webhook.secret, replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')),
          coalesce(create_webhook.enabled, true), coalesce(create_webhook.description, ''), create_webhook.timeout,
          create_webhook.max_attempts, create_webhook.backoff_initial, create_webhook.backoff_factor, create_webhook.backoff_max)
  returning * into result;
  return result;
end;
$$;
comment on function throughline.create_webhook(text, text[], text, text, text, boolean, text, interval, integer, interval, numeric, interval) is $$
@behavior -*

Creates a webhook and returns it, with its secret (generated when none is given). url must be an
absolute http:// or https:// URL; events any of RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED and
STEP_FAILED; workflow (a registered one) and subject optionally narrow the runs. timeout bounds each
attempt; failed attempts are retried after backoff_initial × backoff_factor^(n−1), capped at
backoff_max, until max_attempts. Any invalid argument is refused with TL422 and writes nothing.$$;

create function throughline.delete_webhook(id bigint) returns boolean
language sql volatile
set search_path to pg_catalog
begin atomic
  with deleted as (delete from throughline.webhook w where w.id = delete_webhook.id returning 1)
  select count(*) > 0 from deleted;
end;
comment on function throughline.delete_webhook(bigint) is $$
@behavior -*

Deletes a webhook with its deliveries and their attempts (a delivery in flight is dropped when it
reports back). Returns false when there was no such webhook.$$;

create function throughline.set_webhook_enabled(id bigint, enabled boolean) returns throughline.webhook
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  result throughline.webhook;
begin
  update throughline.webhook w set enabled = coalesce(set_webhook_enabled.enabled, false), updated_at = now()
    where w.id = set_webhook_enabled.id
    returning w.* into result;
  if result.id is null then
    raise exception 'webhook % does not exist', set_webhook_enabled.id using errcode = 'TL404';
  end if;
  return result;
end;
$$;
comment on function throughline.set_webhook_enabled(bigint, boolean) is $$
@behavior -*

Enables or disables a webhook. A disabled webhook gets no new deliveries; its pending deliveries end
FAILED when next tried. Unknown id: TL404.$$;

-- ---------------------------------------------------------------------------------------------
-- The outbox

create function throughline.enqueue_webhook_deliveries(delivery_ids bigint[], run_at timestamptz default now())
returns void
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
begin
  if coalesce(cardinality(enqueue_webhook_deliveries.delivery_ids), 0) = 0 then
    return;
  end if;
  -- SECURITY DEFINER for the same reason as enqueue_step_jobs: add_jobs needs its owner’s rights.
  -- One named queue per webhook: a slow or hanging receiver occupies at most one worker slot, and
  -- the other receivers and the steps keep theirs. Keyless jobs; the attempt fence in
  -- begin_webhook_delivery makes a duplicate doorbell harmless. Graphile Worker retries a job only
  -- when our own bookkeeping failed (database errors); HTTP failures are retried by us.
  perform graphile_worker.add_jobs(
    array(
      select row(
        'throughline_webhook_delivery',
        json_build_object('deliveryId', d.id),
        'throughline_webhook:' || d.webhook_id, enqueue_webhook_deliveries.run_at, 5, null, null, null
      )::graphile_worker.job_spec
      from throughline.webhook_delivery d
      where d.id = any (enqueue_webhook_deliveries.delivery_ids)
      order by d.id
    )
  );
end;
$$;
revoke all on function throughline.enqueue_webhook_deliveries(bigint[], timestamptz) from public;
comment on function throughline.enqueue_webhook_deliveries(bigint[], timestamptz) is $$
@behavior -*

Internal: enqueues one throughline_webhook_delivery job per delivery (payload {deliveryId}) at run_at,
in the queue of its webhook.$$;

create function throughline.epoch_ms(at timestamptz) returns bigint
language sql immutable parallel safe
set search_path to pg_catalog
return floor(extract(epoch from epoch_ms.at) * 1000)::bigint;
comment on function throughline.epoch_ms(timestamptz) is $$
@behavior -*

Epoch milliseconds, the timestamp format of the REST and webhook documents.$$;

create function throughline.tg_event__webhook_outbox() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  event_name text := case
    when new.kind = 'RUN_ENDED' and new.to_status in ('COMPLETED', 'FAILED', 'CANCELLED') then 'RUN_' || new.to_status
    when new.kind = 'STEP_STATUS' and new.to_status = 'FAILED' then 'STEP_FAILED'
  end;
  the_run throughline.run;
  body jsonb;
  delivery_ids bigint[];
begin
  if event_name is null then
    return null;
  end if;
  -- CHEAP EXIT: no enabled webhook wants this event (one probe of a partial index).
  if not exists (select 1 from throughline.webhook w where w.enabled and w.events @> array[event_name]) then
    return null;
  end if;
  select r.* into the_run from throughline.run r where r.token = new.token;
  if the_run.token is null then
    return null; -- the run was deleted in the same transaction
  end if;

  -- The document, as of the end of the changing transaction (this trigger is deferred to commit).
  body := jsonb_build_object(
    'event', event_name,
    'eventSeq', new.seq,
    'at', throughline.epoch_ms(new.at),
    'token', the_run.token,
    'workflow', the_run.workflow,
    'subject', the_run.subject,
    'labels', the_run.labels,
    'run', jsonb_build_object(
      'status', the_run.status,
      'createdAt', throughline.epoch_ms(the_run.created_at),
      'updatedAt', throughline.epoch_ms(the_run.updated_at),
      'completedAt', throughline.epoch_ms(the_run.completed_at),
      'stepsTotal', the_run.steps_total,
      'stepsFailed', the_run.steps_failed,
      'stepsCancelled', the_run.steps_cancelled),
    'step', case when new.step_id is not null then jsonb_build_object(
      'id', new.step_id, 'step', new.step, 'status', new.to_status, 'attempt', new.attempt,
      'failureReason', new.reason, 'updatedAt', throughline.epoch_ms(new.at)) end,
    'failedSteps', coalesce((
      select jsonb_agg(jsonb_build_object(
               'id', s.id, 'step', s.step, 'attempt', s.attempt, 'failureReason', s.failure_reason,
               'startedAt', throughline.epoch_ms(s.started_at), 'updatedAt', throughline.epoch_ms(s.updated_at))
             order by s.id)
      from throughline.step s where s.token = the_run.token and s.status = 'FAILED'), '[]'::jsonb));

  with inserted as (
    insert into throughline.webhook_delivery (webhook_id, event_seq, event, token, payload, max_attempts)
    select w.id, new.seq, event_name, the_run.token, body, w.max_attempts
    from throughline.webhook w
    where w.enabled and w.events @> array[event_name]
      and (w.workflow is null or w.workflow = the_run.workflow)
      and (w.subject is null or w.subject = the_run.subject)
    on conflict (webhook_id, event_seq) do nothing
    returning id
  )
  select array_agg(inserted.id) into delivery_ids from inserted;
  perform throughline.enqueue_webhook_deliveries(delivery_ids);
  return null;
end;
$$;
comment on function throughline.tg_event__webhook_outbox() is $$
@behavior -*

Trigger: for a run that ended (RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED) or a step that FAILED,
writes one webhook_delivery per matching enabled webhook and enqueues its job, in the transaction of
the change. SECURITY DEFINER: whoever may change a step need not read webhooks.$$;

-- Deferred to commit so the document describes the transaction’s final state (the run’s status and
-- every failed step after the cascade), and only events that are about to commit produce deliveries.
-- The WHEN clause keeps every other event (most of them) free of any cost.
create constraint trigger _600_event__webhook_outbox
  after insert on throughline.event
  deferrable initially deferred
  for each row
  when (new.kind = 'RUN_ENDED' or (new.kind = 'STEP_STATUS' and new.to_status = 'FAILED'))
  execute function throughline.tg_event__webhook_outbox();

-- ---------------------------------------------------------------------------------------------
-- Delivering (called by src/runtime/webhookDelivery.ts)

create function throughline.begin_webhook_delivery(delivery_id bigint) returns jsonb
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  d throughline.webhook_delivery;
  w throughline.webhook;
begin
  select t.* into d from throughline.webhook_delivery t where t.id = begin_webhook_delivery.delivery_id
    for update skip locked;
  -- GUARD: gone, being claimed elsewhere, ended, not yet due, or an attempt still running.
  if d.id is null or d.state <> 'PENDING' or d.next_attempt_at > now()
     or (d.locked_until is not null and d.locked_until > now()) then
    return null;
  end if;

  -- An earlier attempt whose worker never reported back (its lease expired) counts as lost.
  update throughline.webhook_delivery_attempt a set outcome = 'LOST', ended_at = now(),
      error = 'the worker never reported the result of this attempt'
    where a.delivery_id = d.id and a.outcome = 'RUNNING';

  select t.* into w from throughline.webhook t where t.id = d.webhook_id;
  if not w.enabled then
    update throughline.webhook_delivery t set state = 'FAILED', locked_until = null, updated_at = now(),
        last_error = 'webhook disabled before delivery'
      where t.id = d.id;
    return null;
  end if;
  if d.attempts >= d.max_attempts then
    update throughline.webhook_delivery t set state = 'FAILED', locked_until = null, updated_at = now()
      where t.id = d.id;
    return null;
  end if;

  update throughline.webhook_delivery t set attempts = t.attempts + 1, updated_at = now(),
      -- Presumed lost after the timeout and a margin for recording the result.
      locked_until = now() + w.timeout + interval '30 seconds'
    where t.id = d.id
    returning t.* into d;
  insert into throughline.webhook_delivery_attempt (delivery_id, attempt) values (d.id, d.attempts);
  return jsonb_build_object(
    'deliveryId', d.id, 'attempt', d.attempts, 'maxAttempts', d.max_attempts, 'event', d.event,
    'webhookId', w.id, 'url', w.url, 'secret', w.secret,
    'timeoutMs', ceil(extract(epoch from w.timeout) * 1000)::bigint, 'payload', d.payload);
end;
$$;
comment on function throughline.begin_webhook_delivery(bigint) is $$
@behavior -*

Internal: claims the next attempt of a delivery that is PENDING and due, and returns what the
sender needs (url, secret, timeout, payload, attempt); NULL when there is nothing to do. Marks an
attempt whose worker was lost, and ends FAILED a delivery whose webhook was disabled.$$;

create function throughline.end_webhook_delivery_attempt(
  delivery_id bigint,
  attempt integer,
  delivered boolean,
  status_code integer default null,
  error text default null,
  duration_ms integer default null,
  response_excerpt text default null
) returns text
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  -- One clock reading: the retry is exactly its delay after the attempt ended.
  ended timestamptz := clock_timestamp();
  d throughline.webhook_delivery;
  w throughline.webhook;
  delay interval;
  next_at timestamptz;
  reason text := case when end_webhook_delivery_attempt.delivered then null
                      else coalesce(nullif(btrim(end_webhook_delivery_attempt.error), ''), 'delivery failed') end;
begin
  select t.* into d from throughline.webhook_delivery t
    where t.id = end_webhook_delivery_attempt.delivery_id
    for update;
  -- GUARD: fenced by attempt; a late report of an older attempt changes nothing.
  if d.id is null or d.state <> 'PENDING' or d.attempts <> end_webhook_delivery_attempt.attempt then
    return 'STALE';
  end if;
  select t.* into w from throughline.webhook t where t.id = d.webhook_id;

  if not end_webhook_delivery_attempt.delivered and d.attempts < d.max_attempts then
    -- Exponential backoff with up to +10 % jitter so that deliveries failing together spread out.
    delay := least(w.backoff_max, w.backoff_initial * power(w.backoff_factor, d.attempts - 1)::double precision)
             * (1 + random() * 0.1);
    next_at := ended + delay;
  end if;

  update throughline.webhook_delivery_attempt a set
      ended_at = ended,
      outcome = case when end_webhook_delivery_attempt.delivered then 'DELIVERED' else 'FAILED' end,
      status_code = end_webhook_delivery_attempt.status_code,
      error = reason,
      duration_ms = greatest(end_webhook_delivery_attempt.duration_ms, 0),
      response_excerpt = left(end_webhook_delivery_attempt.response_excerpt, 1024),
      retry_at = next_at
    where a.delivery_id = d.id and a.attempt = d.attempts;

  update throughline.webhook_delivery t set
      state = case when end_webhook_delivery_attempt.delivered then 'DELIVERED'
                   when next_at is null then 'FAILED'
                   else 'PENDING' end,
      delivered_at = case when end_webhook_delivery_attempt.delivered then clock_timestamp() end,
      next_attempt_at = coalesce(next_at, t.next_attempt_at),
      locked_until = null,
      last_status_code = end_webhook_delivery_attempt.status_code,
      last_error = reason,
      updated_at = now()
    where t.id = d.id
    returning t.* into d;

  if next_at is not null then
    perform throughline.enqueue_webhook_deliveries(array[d.id], next_at);
  end if;
  return d.state;
end;
$$;
comment on function throughline.end_webhook_delivery_attempt(bigint, integer, boolean, integer, text, integer, text) is $$
@behavior -*

Internal: records how an attempt ended. Delivered: the delivery is DELIVERED. Failed with attempts
left: it stays PENDING and its next attempt is enqueued after the backoff. Otherwise FAILED. Returns
the new state, or STALE (changing nothing) for an attempt that is not the current one.$$;

-- Webhooks, continued (the outbox, tables and delivery functions are in committed migration 000001,
-- split 810-webhooks.sql). Idempotent: this file re-runs on every change while developing.

-- A doorbell can go missing: a worker that claimed an attempt and then could not record its result
-- (a database error) leaves the delivery PENDING with no job to ring it again. The data is safe (the
-- delivery row is committed); this sweep makes sure it is also eventually sent.
create or replace function throughline.resume_webhook_deliveries(
  stale_after interval default interval '5 minutes',
  max_deliveries integer default 1000
) returns integer
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  ids bigint[];
begin
  select array_agg(due.id) into ids from (
    select d.id from throughline.webhook_delivery d
    where d.state = 'PENDING'
      and d.next_attempt_at < now() - resume_webhook_deliveries.stale_after
      and (d.locked_until is null or d.locked_until < now())
      -- Its webhook’s queue holds no live job (queued, waiting for a retry, or running): nothing will
      -- ring. Jobs that exhausted their attempts stay in the view; they ring no more.
      and not exists (select 1 from graphile_worker.jobs j
                      where j.queue_name = 'throughline_webhook:' || d.webhook_id and j.attempts < j.max_attempts)
    order by d.next_attempt_at
    limit resume_webhook_deliveries.max_deliveries
    for update of d skip locked
  ) due;
  perform throughline.enqueue_webhook_deliveries(ids);
  return coalesce(cardinality(ids), 0);
end;
$$;
comment on function throughline.resume_webhook_deliveries(interval, integer) is $$
@behavior -*

Maintenance: enqueues a job again for each PENDING delivery that has been due for longer than
stale_after while no attempt is running and its webhook’s queue holds no job, so a lost doorbell
(a worker that could not record an attempt) never leaves a delivery unsent. Returns how many.$$;

--! split: 820-access_control.sql
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
-- start_run through the run trigger above; cancel_run and retry_step call check_run_scope first
-- (320-run_control.sql).

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
