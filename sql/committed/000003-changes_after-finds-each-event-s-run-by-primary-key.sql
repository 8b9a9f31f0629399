--! Previous: sha1:b78fda5fdabe42b586025121e1a6c9609f4d345d
--! Hash: sha1:dfb3a71aa083a54f92cb3f791d1c15cc5e2ae81b
--! Message: changes_after finds each event's run by primary key

--! split: 1-current.sql
-- changes_after: find each event’s run by its primary key, whatever the size of the run table.
--
-- The server’s change hub calls changes_after(cursor) every 50 ms while anyone subscribes. Joined to
-- throughline.run as a plain join, the planner hashed the whole run table for the few dozen events
-- of a read (1.6 ms with 3,000 runs, growing with retention; 112 ms mean per read under the bench’s
-- load A with 500 subscribers, which put a step’s delivery p50 at 300 ms). OFFSET 0 keeps the
-- lateral subquery from being pulled up into that join, so each event costs one index lookup.

create or replace function throughline.changes_after(after text, token uuid default null, workflow text default null,
                                                     subject text default null)
returns table (next_cursor text, events jsonb)
language sql stable
set search_path to pg_catalog
begin atomic
  -- As throughline.events_after (500-events.sql), plus what a server needs to fan one read out to
  -- many subscribers: the writing transaction (xid, to tell which events a subscriber’s own snapshot
  -- already covered) and the run’s workflow and subject (to filter without another read).
  select pg_current_snapshot()::text,
         coalesce(jsonb_agg(jsonb_build_object(
           'seq', e.seq::text, 'xid', e.xid::text, 'token', e.token, 'workflow', r.workflow, 'subject', r.subject,
           'stepId', e.step_id::text, 'step', e.step, 'kind', e.kind, 'fromStatus', e.from_status,
           'toStatus', e.to_status, 'attempt', e.attempt, 'reason', e.reason, 'at', e.at) order by e.seq), '[]'::jsonb)
  from throughline.event e
  cross join lateral (select x.workflow, x.subject from throughline.run x where x.token = e.token offset 0) r
  where e.xid >= pg_snapshot_xmin(changes_after.after::pg_snapshot)
    and not pg_visible_in_snapshot(e.xid, changes_after.after::pg_snapshot)
    and (changes_after.token is null or e.token = changes_after.token)
    and (changes_after.workflow is null or r.workflow = changes_after.workflow)
    and (changes_after.subject is null or r.subject = changes_after.subject);
end;
