-- Experiment: NOTIFY only for run-level events (created/admitted/ended/reopened); step events are
-- still logged and readable with events_after, but begin_step and most complete_steps no longer NOTIFY.
drop trigger _900_event__notify on throughline.event;
create trigger _900_event__notify
  after insert on throughline.event
  for each row when (new.kind in ('RUN_CREATED', 'RUN_ADMITTED', 'RUN_ENDED', 'RUN_REOPENED'))
  execute function throughline.tg_event__notify();
