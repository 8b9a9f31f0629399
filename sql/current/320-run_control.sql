-- What people do to runs: cancel one, retry a failed step with everything it had stopped.

create function throughline.cancel_run(token uuid, reason text default null) returns throughline.run
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  the_run throughline.run;
begin
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
language plpgsql volatile
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
