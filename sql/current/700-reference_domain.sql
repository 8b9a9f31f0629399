-- Domain data of the reference workflows (bom_upload, reanalysis): the components a BOM declared and
-- the metrics computed for a project. Small on purpose: they exist so the reference steps do real,
-- checkable work. Writes are idempotent (an attempt may run twice: at-least-once execution).

create table throughline.component (
  project text not null,
  ordinal integer not null check (ordinal >= 0),
  token uuid not null,
  bom_ref text,
  type text not null,
  name text not null,
  version text,
  purl text,
  primary key (project, ordinal)
);
create index component_purl_idx on throughline.component (purl);
comment on table throughline.component is $$
@behavior -insert -update -delete

Components of each project as declared by its latest processed BOM (written by BOM_PROCESSING).$$;
comment on column throughline.component.project is 'The project (the run’s subject).';
comment on column throughline.component.ordinal is 'Position of the component in the BOM.';
comment on column throughline.component.token is 'The run whose BOM declared it.';
comment on column throughline.component.bom_ref is 'The component’s bom-ref, if the BOM gave one.';
comment on column throughline.component.type is 'CycloneDX component type (library, framework, application, …).';
comment on column throughline.component.name is 'Component name.';
comment on column throughline.component.version is 'Component version, if given.';
comment on column throughline.component.purl is 'Package URL, if given; what vulnerability analysis matches on.';

create table throughline.project_metrics (
  project text primary key,
  token uuid not null,
  components integer not null,
  vulnerabilities integer not null,
  critical integer not null,
  policy_violations integer not null,
  updated_at timestamptz not null default now()
);
comment on table throughline.project_metrics is $$
@behavior -insert -update -delete

Latest metrics of each project (written by METRICS_UPDATE).$$;
comment on column throughline.project_metrics.project is 'The project.';
comment on column throughline.project_metrics.token is 'The run that computed them.';
comment on column throughline.project_metrics.components is 'Number of components.';
comment on column throughline.project_metrics.vulnerabilities is 'Number of vulnerability findings.';
comment on column throughline.project_metrics.critical is 'Findings of CRITICAL severity.';
comment on column throughline.project_metrics.policy_violations is 'Policy violations.';
comment on column throughline.project_metrics.updated_at is 'When they were computed.';

create function throughline.record_components(project text, token uuid, components jsonb) returns integer
language plpgsql volatile
set search_path to pg_catalog
as $$
#variable_conflict use_column
declare
  n integer;
begin
  if jsonb_typeof(record_components.components) is distinct from 'array' then
    raise exception 'components must be a JSON array' using errcode = 'TL422';
  end if;
  -- Replace, not append: the project’s components are those of its latest BOM, and a repeated
  -- attempt writes the same rows again.
  delete from throughline.component c where c.project = record_components.project;
  insert into throughline.component (project, ordinal, token, bom_ref, type, name, version, purl)
    select record_components.project, (x.pos - 1)::integer, record_components.token,
           x.value ->> 'bomRef', x.value ->> 'type', x.value ->> 'name', x.value ->> 'version', x.value ->> 'purl'
    from jsonb_array_elements(record_components.components) with ordinality as x(value, pos);
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function throughline.record_components(text, uuid, jsonb) is $$
@behavior -*

Replaces a project’s components with those of a processed BOM ([{bomRef, type, name, version, purl}]).
Returns how many were recorded.$$;

create function throughline.record_project_metrics(project text, token uuid, components integer, vulnerabilities integer,
                                                   critical integer, policy_violations integer)
returns void
language sql volatile
set search_path to pg_catalog
begin atomic
  insert into throughline.project_metrics as m (project, token, components, vulnerabilities, critical, policy_violations)
    values (record_project_metrics.project, record_project_metrics.token, record_project_metrics.components,
            record_project_metrics.vulnerabilities, record_project_metrics.critical, record_project_metrics.policy_violations)
    on conflict (project) do update set
      token = excluded.token, components = excluded.components, vulnerabilities = excluded.vulnerabilities,
      critical = excluded.critical, policy_violations = excluded.policy_violations, updated_at = now();
end;
comment on function throughline.record_project_metrics(text, uuid, integer, integer, integer, integer) is $$
@behavior -*

Stores a project’s latest metrics (idempotent upsert).$$;
