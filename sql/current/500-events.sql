-- Reading the event log from a cursor. A cursor is a pg_snapshot: "what this reader has seen" is
-- exactly the set of transactions visible in it. Sequence numbers alone cannot be cursors: a
-- transaction that took seq 10 may commit after one that took seq 11, and a reader that moved past
-- 11 would never see 10. With snapshots, each read returns the events of transactions that have
-- committed since the previous read, whatever their order, and the new cursor is the snapshot the
-- read itself used. No gap, no duplicate.

create function throughline.current_cursor() returns text
language sql stable
set search_path to pg_catalog
return pg_current_snapshot()::text;
comment on function throughline.current_cursor() is $$
A cursor for "now": read it in the same statement or transaction as a state snapshot, then pass it
to events_after to get every change after that state.$$;

create function throughline.events_after(after text, token uuid default null)
returns table (next_cursor text, events jsonb)
language sql stable
set search_path to pg_catalog
begin atomic
  -- One statement, one snapshot: the events read and the cursor returned describe the same moment.
  select pg_current_snapshot()::text,
         coalesce(jsonb_agg(jsonb_build_object(
           'seq', e.seq, 'token', e.token, 'stepId', e.step_id, 'step', e.step, 'kind', e.kind,
           'fromStatus', e.from_status, 'toStatus', e.to_status, 'attempt', e.attempt,
           'reason', e.reason, 'at', e.at) order by e.seq), '[]'::jsonb)
  from throughline.event e
  where e.xid >= pg_snapshot_xmin(events_after.after::pg_snapshot)
    and not pg_visible_in_snapshot(e.xid, events_after.after::pg_snapshot)
    and (events_after.token is null or e.token = events_after.token);
end;
comment on function throughline.events_after(text, uuid) is $$
Every event committed after the cursor `after` (optionally of one run), in transition order, and the
cursor to pass next time. Cursors come from current_cursor or a previous call; a malformed cursor is
an error (22P02).$$;
