-- PROTOTYPE EXPERIMENT (S3 "hand-off"): the worker that completes a step claims the dependents it
-- released in the same transaction and runs them itself; no Graphile job is added for them.
-- Plus S2 (event NOTIFY only for run-level events).
drop trigger _900_event__notify on throughline.event;
create trigger _900_event__notify
  after insert on throughline.event
  for each row when (new.kind in ('RUN_CREATED', 'RUN_ADMITTED', 'RUN_ENDED', 'RUN_REOPENED'))
  execute function throughline.tg_event__notify();

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
  -- PROTOTYPE: the completing worker claims these itself.
  if current_setting('throughline.direct_claim', true) = 'on' then
    return;
  end if;
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

create function throughline.complete_step_and_claim(step_id bigint, attempt integer, output jsonb, worker_id text, lease interval)
returns jsonb
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  ok boolean;
  claims jsonb := '[]';
  c jsonb;
  d record;
  the_token uuid;
  the_step text;
begin
  perform set_config('throughline.direct_claim', 'on', true);
  ok := throughline.complete_step(complete_step_and_claim.step_id, complete_step_and_claim.attempt, complete_step_and_claim.output);
  perform set_config('throughline.direct_claim', '', true);
  if not ok then
    return null;
  end if;
  select s.token, s.step into the_token, the_step from throughline.step s where s.id = complete_step_and_claim.step_id;
  for d in select s.id, s.attempt from throughline.step s
           where s.token = the_token and the_step = any (s.depends_on) and s.status = 'PENDING'
             and s.remaining_deps = 0 and s.ready_at is not null and s.locked_by is null
           order by s.id loop
    c := throughline.begin_step(d.id, d.attempt, complete_step_and_claim.worker_id, complete_step_and_claim.lease);
    if c is not null then
      claims := claims || jsonb_build_array(c);
    end if;
  end loop;
  return claims;
end;
$$;
