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
    if the_run.admitted_at is not null then
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

-- _900: one NOTIFY per transaction, whatever it wrote. Postgres folds identical notifications of one
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
  for each statement execute function throughline.tg_event__notify();
