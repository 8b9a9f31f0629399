-- Workflow definitions arrive from TypeScript (src/workflows/) at start; the database checks them
-- again, so a definition written straight in SQL obeys the same rules.

create function throughline.register_workflow(
  name text,
  steps jsonb,
  description text default '',
  serialize_by_subject boolean default true,
  max_input_bytes integer default 10485760,
  subject_key text default null
) returns throughline.workflow
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  wf throughline.workflow;
  new_definition jsonb := jsonb_build_object('steps', register_workflow.steps, 'description', register_workflow.description,
                                         'serializeBySubject', register_workflow.serialize_by_subject,
                                         'maxInputBytes', register_workflow.max_input_bytes,
                                         'subjectKey', register_workflow.subject_key);
  bad text;
begin
  -- Several instances start at once: one registration per workflow at a time.
  perform pg_advisory_xact_lock(hashtextextended('throughline:workflow:' || register_workflow.name, 0));

  -- GUARD: a non-empty array of steps with unique names, dependencies on earlier steps only
  -- (which also rules out cycles), and sane policies.
  if jsonb_typeof(register_workflow.steps) is distinct from 'array' or jsonb_array_length(register_workflow.steps) = 0 then
    raise exception 'workflow "%" needs a non-empty array of steps', register_workflow.name using errcode = 'TL422';
  end if;
  select format('step %s depends on %s, which is not an earlier step', x.value ->> 'step', dep)
    into bad
    from jsonb_array_elements(register_workflow.steps) with ordinality as x(value, pos)
    cross join lateral jsonb_array_elements_text(coalesce(x.value -> 'dependsOn', '[]')) as dep
    where not exists (select 1 from jsonb_array_elements(register_workflow.steps) with ordinality as y(value, pos)
                      where y.value ->> 'step' = dep and y.pos < x.pos)
    limit 1;
  if bad is not null then
    raise exception 'workflow "%": %', register_workflow.name, bad using errcode = 'TL422';
  end if;
  select format('step %s appears more than once', x.value ->> 'step') into bad
    from jsonb_array_elements(register_workflow.steps) as x(value)
    group by x.value ->> 'step' having count(*) > 1 limit 1;
  if bad is not null then
    raise exception 'workflow "%": %', register_workflow.name, bad using errcode = 'TL422';
  end if;

  select w.* into wf from throughline.workflow w where w.name = register_workflow.name;
  if wf.name is not null and wf.definition = new_definition then
    return wf; -- unchanged: keep the version
  end if;

  insert into throughline.workflow as w (name, description, serialize_by_subject, subject_key, max_input_bytes, definition)
    values (register_workflow.name, coalesce(register_workflow.description, ''), register_workflow.serialize_by_subject,
            register_workflow.subject_key, register_workflow.max_input_bytes, new_definition)
    on conflict (name) do update set
      version = w.version + 1,
      description = excluded.description,
      serialize_by_subject = excluded.serialize_by_subject,
      subject_key = excluded.subject_key,
      max_input_bytes = excluded.max_input_bytes,
      definition = excluded.definition,
      updated_at = now()
    returning w.* into wf;

  delete from throughline.workflow_step ws where ws.workflow = register_workflow.name;
  insert into throughline.workflow_step
      (workflow, step, position, task_identifier, depends_on, timeout, max_attempts, backoff_initial, backoff_factor, backoff_max)
    select register_workflow.name,
           x.value ->> 'step',
           x.pos,
           coalesce(x.value ->> 'task', lower(x.value ->> 'step')),
           coalesce(array(select jsonb_array_elements_text(x.value -> 'dependsOn')), '{}'),
           coalesce(make_interval(secs => (x.value ->> 'timeoutSeconds')::double precision), interval '60 minutes'),
           coalesce((x.value ->> 'maxAttempts')::integer, 6),
           coalesce(make_interval(secs => (x.value ->> 'backoffInitialSeconds')::double precision), interval '5 seconds'),
           coalesce((x.value ->> 'backoffFactor')::numeric, 1.5),
           coalesce(make_interval(secs => (x.value ->> 'backoffMaxSeconds')::double precision), interval '30 minutes')
    from jsonb_array_elements(register_workflow.steps) with ordinality as x(value, pos);
  return wf;
end;
$$;
comment on function throughline.register_workflow(text, jsonb, text, boolean, integer, text) is $$
@behavior -*

Creates or updates a workflow definition. steps is an array in topological order of
{step, task, dependsOn[], timeoutSeconds, maxAttempts, backoffInitialSeconds, backoffFactor,
backoffMaxSeconds}; unknown or later dependencies, duplicate names and bad values are refused
(TL422). The version rises only when the definition changes. Runs already started keep the steps
they were created with.$$;
