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
