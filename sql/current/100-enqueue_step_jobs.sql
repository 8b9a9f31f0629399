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
  -- Keyless jobs: a job per (step, attempt) is never reused (anchors: job_key replace mode makes a
  -- second job while the first runs), and the attempt fence makes duplicates harmless anyway.
  perform graphile_worker.add_jobs(
    array(
      select row(
        s.task_identifier,
        json_build_object('stepId', s.id, 'attempt', s.attempt),
        null, enqueue_step_jobs.run_at, 3, null, null, null
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
