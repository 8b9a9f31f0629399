-- UPPER-BOUND EXPERIMENT ONLY (never ship: it edits Graphile Worker's function): no NOTIFY in any
-- step transaction. Event NOTIFY only for run-level events, and add_jobs without its jobs:insert
-- NOTIFY (the worker finds jobs by its local queue refetching while busy, or by polling when idle).
drop trigger _900_event__notify on throughline.event;
create trigger _900_event__notify
  after insert on throughline.event
  for each row when (new.kind in ('RUN_CREATED', 'RUN_ADMITTED', 'RUN_ENDED', 'RUN_REOPENED'))
  execute function throughline.tg_event__notify();
do $$
declare def text;
begin
  for def in select pg_get_functiondef(p.oid) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'graphile_worker' and p.proname = 'add_jobs' loop
    execute regexp_replace(def, 'perform pg_notify\(''jobs:insert''[^;]*;', '', 'g');
  end loop;
end $$;
