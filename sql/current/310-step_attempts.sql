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
    'stepId', s.id, 'token', s.token, 'step', s.step, 'attempt', s.attempt, 'maxAttempts', s.max_attempts,
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
