// Cursors are pg_snapshot texts ("xmin:xmax:xip,xip,…", see sql/current/500-events.sql). The server
// compares them to events' transaction ids to tell which events a subscriber has already seen.

export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  xip: Set<bigint>;
}

const cursorPattern = /^(\d{1,20}):(\d{1,20}):((?:\d{1,20}(?:,\d{1,20})*)?)$/;

/** Parses a cursor; undefined when it is not one (so callers can say so plainly). */
export function parseCursor(text: string): Snapshot | undefined {
  const m = cursorPattern.exec(text);
  if (!m) return undefined;
  const xmin = BigInt(m[1]);
  const xmax = BigInt(m[2]);
  if (xmin > xmax) return undefined;
  const xip = new Set(m[3] ? m[3].split(",").map((x) => BigInt(x)) : []);
  return { xmin, xmax, xip };
}

/** Whether the transaction xid had committed in the snapshot (Postgres' pg_visible_in_snapshot). */
export function visibleIn(xid: bigint, snapshot: Snapshot): boolean {
  if (xid < snapshot.xmin) return true;
  if (xid >= snapshot.xmax) return false;
  return !snapshot.xip.has(xid);
}
