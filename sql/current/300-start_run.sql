-- Submitting work: start_run creates a run and all its steps and starts what may start, atomically;
-- admit_next_run lets the next waiting run of a subject go when the one before it ends.

create function throughline.lock_subject(subject text) returns void
language sql volatile
set search_path to pg_catalog
begin atomic
  -- A transaction-scoped lock per subject: admission decisions for one subject never interleave.
  select pg_advisory_xact_lock(hashtextextended('throughline:subject:' || lock_subject.subject, 0));
end;
comment on function throughline.lock_subject(text) is $$
@behavior -*

Internal: serialises admission decisions for one subject until the end of the transaction.$$;

create function throughline.admit_run(token uuid) returns void
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  root_ids bigint[];
begin
  update throughline.run r set admitted_at = now() where r.token = admit_run.token and r.admitted_at is null;
  if not found then
    return;
  end if;
  with roots as (
    update throughline.step s set attempt = s.attempt + 1, ready_at = now()
      where s.token = admit_run.token and s.status = 'PENDING' and s.remaining_deps = 0 and s.ready_at is null
      returning s.id
  )
  select array_agg(roots.id) into root_ids from roots;
  insert into throughline.event (token, kind, to_status) values (admit_run.token, 'RUN_ADMITTED', 'PENDING');
  perform throughline.enqueue_step_jobs(root_ids);
end;
$$;
comment on function throughline.admit_run(uuid) is $$
@behavior -*

Internal: marks a run admitted and enqueues its root steps.$$;

create function throughline.admit_next_run(subject text) returns uuid
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  next_token uuid;
begin
  perform throughline.lock_subject(admit_next_run.subject);
  -- GUARD: someone is still running for this subject (e.g. a retried run): wait for it instead.
  if exists (select 1 from throughline.run r
             where r.subject = admit_next_run.subject and r.status = 'PENDING' and r.admitted_at is not null) then
    return null;
  end if;
  -- SKIP LOCKED: a waiting run being cancelled right now is passed over rather than waited for.
  select r.token into next_token
    from throughline.run r
    join throughline.workflow w on w.name = r.workflow and w.serialize_by_subject
    where r.subject = admit_next_run.subject and r.status = 'PENDING' and r.admitted_at is null
    order by r.created_at, r.token
    limit 1
    for update of r skip locked;
  if next_token is not null then
    perform throughline.admit_run(next_token);
  end if;
  return next_token;
end;
$$;
comment on function throughline.admit_next_run(text) is $$
@behavior -*

Internal: when a subject’s run ends, admits the oldest run of that subject still waiting, if no
other run of the subject is being processed. Returns its token, or NULL.$$;

create function throughline.start_run(
  workflow text,
  input jsonb default '{}',
  subject text default null,
  labels jsonb default '{}',
  token uuid default null
) returns throughline.run
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  wf throughline.workflow;
  the_token uuid := coalesce(start_run.token, gen_random_uuid());
  the_run throughline.run;
  input_bytes integer;
  admitted boolean;
  the_subject text := start_run.subject;
begin
  -- GUARD: what is submitted must make sense before anything is written.
  select w.* into wf from throughline.workflow w where w.name = start_run.workflow;
  if wf.name is null then
    raise exception 'unknown workflow "%"', start_run.workflow
      using errcode = 'TL404',
            hint = (select 'Registered workflows: ' || coalesce(string_agg(w.name, ', ' order by w.name), 'none')
                    from throughline.workflow w);
  end if;
  if start_run.input is null or jsonb_typeof(start_run.input) <> 'object' then
    raise exception 'run input must be a JSON object, got %', coalesce(jsonb_typeof(start_run.input), 'null')
      using errcode = 'TL422';
  end if;
  input_bytes := octet_length(start_run.input::text);
  if input_bytes > wf.max_input_bytes then
    raise exception 'run input is % bytes, more than the % bytes workflow "%" accepts', input_bytes, wf.max_input_bytes, wf.name
      using errcode = 'TL413';
  end if;
  if start_run.labels is null or jsonb_typeof(start_run.labels) <> 'object' then
    raise exception 'labels must be a JSON object' using errcode = 'TL422';
  end if;
  if the_subject is null and wf.subject_key is not null then
    the_subject := start_run.input ->> wf.subject_key;
  end if;
  if the_subject is not null and length(the_subject) not between 1 and 256 then
    raise exception 'subject must be 1 to 256 characters' using errcode = 'TL422';
  end if;

  -- IDEMPOTENCY: a token names one submission. A concurrent insert of the same token waits on the
  -- primary key and then finds the row; a repeat returns the run that exists.
  if wf.serialize_by_subject and the_subject is not null then
    perform throughline.lock_subject(the_subject);
  end if;
  insert into throughline.run as r (token, workflow, subject, input, labels, steps_total, steps_open)
    select the_token, wf.name, the_subject, start_run.input, start_run.labels, count(*), count(*)
    from throughline.workflow_step ws where ws.workflow = wf.name
    having count(*) > 0
    on conflict on constraint run_pkey do nothing
    returning r.* into the_run;
  if the_run.token is null then
    select r.* into the_run from throughline.run r where r.token = the_token;
    if the_run.token is null then
      raise exception 'workflow "%" has no steps', wf.name using errcode = 'TL422';
    end if;
    if the_run.workflow <> wf.name or the_run.input <> start_run.input
       or the_run.subject is distinct from the_subject then
      raise exception 'token % was already used for a different submission', the_token
        using errcode = 'TL409',
              hint = 'Reuse a token only to repeat the same submission; omit it to get a new one.';
    end if;
    return the_run;
  end if;

  -- All steps at once, PENDING, so "processing" is true from the first commit until the last step ends.
  perform set_config('throughline.creating_run', the_token::text, true);
  with defs as (
    select ws.*, nextval(pg_get_serial_sequence('throughline.step', 'id')) as id
    from throughline.workflow_step ws
    where ws.workflow = wf.name
  )
  insert into throughline.step
      (id, token, parent_step_id, step, task_identifier, depends_on, remaining_deps, max_attempts, timeout)
    select d.id, the_token, (select p.id from defs p where p.step = d.depends_on[1]), d.step, d.task_identifier,
           d.depends_on, cardinality(d.depends_on), d.max_attempts, d.timeout
    from defs d
    order by d.position;
  perform set_config('throughline.creating_run', '', true);
  insert into throughline.event (token, kind, to_status) values (the_token, 'RUN_CREATED', 'PENDING');

  -- ADMISSION: with per-subject serialisation, wait while another run of the subject is processing.
  admitted := not (wf.serialize_by_subject and the_subject is not null and exists (
    select 1 from throughline.run r
    where r.subject = the_subject and r.status = 'PENDING' and r.token <> the_token));
  if admitted then
    perform throughline.admit_run(the_token);
  end if;
  select r.* into the_run from throughline.run r where r.token = the_token;
  return the_run;
end;
$$;
comment on function throughline.start_run(text, jsonb, text, jsonb, uuid) is $$
Starts a run of a workflow: validates the input, creates the run and all of its steps PENDING, and
enqueues the root steps, in one transaction. Idempotent: given a token that already names the same
submission it returns that run (concurrent submissions of one token make one run); a token reused
for a different submission is an error (TL409). Unknown workflow: TL404; input not an object or bad
labels: TL422; input larger than the workflow’s max_input_bytes: TL413. When the workflow serialises
by subject and another run of the subject is processing, the run waits PENDING and starts when that
one ends. Without a subject, the workflow’s subject_key names the input field to take it from.$$;

create function throughline.is_processing(token uuid) returns boolean
language sql stable
set search_path to pg_catalog
return coalesce((select r.steps_open > 0 from throughline.run r where r.token = is_processing.token), false);
comment on function throughline.is_processing(uuid) is
  'True while any step of the run is PENDING or TIMED_OUT; false when all have ended, and false for an unknown token (as hyades answers).';
