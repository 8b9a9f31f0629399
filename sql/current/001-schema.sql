--! Message: Throughline engine schema

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
-- Maintenance scans: only open steps are ever timed out or reclaimed, so index just those.
create index step_open_idx on throughline.step (status, lease_expires_at) where status in ('PENDING', 'TIMED_OUT');
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
