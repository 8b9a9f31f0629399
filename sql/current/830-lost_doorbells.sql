-- Lost doorbells. A job can be taken by a worker that never gets to begin the step: Postgres
-- restarted between Graphile Worker’s claim and our begin_step, and Graphile Worker could not record
-- the failure either, so the job stays locked for its 4 hours and the step, ready but never claimed,
-- has no lease of ours to expire. Jobs are now keyed by (step, attempt), and the lease sweep also
-- rings again for a ready step that nobody claimed within lost_after while its job is missing or
-- locked for longer than that (a live worker begins a step milliseconds after taking its job).

create or replace function throughline.enqueue_step_jobs(step_ids bigint[], run_at timestamptz default now())
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

drop function if exists throughline.reclaim_expired_leases(timestamptz, integer);
create or replace function throughline.reclaim_expired_leases(at timestamptz default now(), max_steps integer default 100,
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
