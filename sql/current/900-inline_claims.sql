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

create or replace function throughline.tg_step__advance() returns trigger
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

drop trigger if exists _900_event__notify on throughline.event;
create trigger _900_event__notify
  after insert on throughline.event
  for each row
  when (new.kind in ('RUN_CREATED', 'RUN_ADMITTED', 'RUN_ENDED', 'RUN_REOPENED'))
  execute function throughline.tg_event__notify();

-- begin_step now also says which task runs the step (a claimed step arrives without a job).
create or replace function throughline.begin_step(step_id bigint, attempt integer, worker_id text, lease interval default interval '30 seconds')
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

create or replace function throughline.finish_step(
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
    select s.id, s.attempt, s.task_identifier from throughline.step s
    where s.token = the_token and s.status = 'PENDING' and s.locked_by is null and s.ready_at = now()
    order by s.id
  loop
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

revoke all on function throughline.finish_step(bigint, integer, text, jsonb, text, text, interval, integer, text[]) from public;
