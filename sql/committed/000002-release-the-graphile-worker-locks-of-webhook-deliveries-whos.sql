--! Previous: sha1:17cd3be9c14dfcb7c02abc28a69fd5ccd63af12b
--! Hash: sha1:b78fda5fdabe42b586025121e1a6c9609f4d345d
--! Message: Release the Graphile Worker locks of webhook deliveries whose worker was lost

--! split: 1-release_lost_webhook_jobs.sql
-- A worker that dies in the middle of a webhook delivery (killed, out of memory, host lost) leaves
-- its Graphile Worker job locked, and with it the webhook’s queue: deliveries of one webhook go one
-- at a time, and Graphile Worker frees a dead worker’s locks only after 4 hours. Every later
-- delivery of that webhook would wait that long.
--
-- The delivery row knows sooner. Its attempt is presumed lost once locked_until has passed (the
-- webhook’s timeout, which the sender enforces with its own timer, plus a margin for recording the
-- result). A job of that webhook’s queue that was locked before the lost attempt began is the one
-- that ran it, and the worker slot holding it is gone or stuck past a deadline of its own. Its locks
-- are released; Graphile Worker runs the job again at once, and begin_webhook_delivery records the
-- lost attempt and begins the next. A worker that was only slow and reports back later is fenced by
-- attempt in end_webhook_delivery_attempt (STALE) once the next attempt has begun.

create or replace function throughline.release_lost_webhook_jobs() returns integer
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  lost_workers text[];
begin
  select array_agg(distinct j.locked_by) into lost_workers
  from throughline.webhook_delivery d
  join throughline.webhook_delivery_attempt a on a.delivery_id = d.id and a.outcome = 'RUNNING'
  join graphile_worker.jobs j on j.queue_name = 'throughline_webhook:' || d.webhook_id
  where d.state = 'PENDING'
    and d.locked_until < now()
    and j.locked_by is not null
    and j.locked_at <= a.started_at;
  if lost_workers is null then
    return 0;
  end if;
  -- Graphile Worker’s own remedy for a dead worker: its job and queue locks are released.
  perform graphile_worker.force_unlock_workers(lost_workers);
  return cardinality(lost_workers);
end;
$$;
revoke all on function throughline.release_lost_webhook_jobs() from public;
comment on function throughline.release_lost_webhook_jobs() is $$
@behavior -*

Maintenance (the workers’ lease sweep): releases the Graphile Worker locks of webhook delivery jobs
whose attempt is presumed lost (locked_until has passed), so that a worker dying mid-delivery
delays its webhook by the attempt’s timeout plus a margin, not Graphile Worker’s 4 hours. Returns
how many worker slots were released.$$;
