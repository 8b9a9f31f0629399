
-- Relation names in GraphQL. The foreign keys are named after their columns (token, workflow), which
-- PostGraphile cannot shorten by itself (it would say stepsByToken, workflowByWorkflow).
comment on constraint step_token_fkey on throughline.step is $$
@fieldName run
@foreignFieldName steps

Every step belongs to one run; its steps are deleted with it.$$;
comment on constraint step_parent_step_id_fkey on throughline.step is $$
@fieldName parentStep
@foreignFieldName childSteps

The hyades tree: a step hangs under its first dependency.$$;
comment on constraint run_workflow_fkey on throughline.run is $$
@fieldName definition
@foreignFieldName runs

The workflow definition a run executes.$$;
comment on constraint workflow_step_workflow_fkey on throughline.workflow_step is $$
@fieldName definition
@foreignFieldName steps

The workflow a step definition belongs to.$$;
comment on constraint event_token_fkey on throughline.event is $$
@fieldName run
@foreignFieldName events

The run whose transition an event records.$$;
comment on constraint step_attempt_step_id_fkey on throughline.step_attempt is $$
@fieldName step
@foreignFieldName attempts

The step an attempt ran.$$;
comment on constraint step_retry_step_id_fkey on throughline.step_retry is $$
@fieldName step
@foreignFieldName retries

The step a retry reopened.$$;
