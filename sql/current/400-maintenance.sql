-- Maintenance: reclaim attempts whose worker died, time out steps that make no progress, purge old
-- runs. Each function takes the point in time it works to (default now()), so it can be driven by a
-- scheduler or a test, and is safe to run from many instances at once (SKIP LOCKED, fenced updates).

create function throughline.reclaim_expired_leases(at timestamptz default now(), max_steps integer default 100)
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
  return reclaimed;
end;
$$;
comment on function throughline.reclaim_expired_leases(timestamptz, integer) is $$
Finds attempts whose lease expired before `at` (their worker stopped heartbeating: crashed, killed,
partitioned) and gives the step its next attempt at once, or FAILS it when no attempts remain. The
dead attempt can no longer write: its attempt number is no longer current. Returns how many were
reclaimed (at most max_steps per call).$$;

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
