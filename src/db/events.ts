// The event log, read from a cursor (sql/current/500-events.sql).
import type pg from "pg";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

export interface ThroughlineEvent {
  seq: number;
  token: string;
  stepId: number | null;
  step: string | null;
  kind: "RUN_CREATED" | "RUN_ADMITTED" | "RUN_ENDED" | "RUN_REOPENED" | "STEP_STATUS" | "STEP_STARTED" | "STEP_RETRY_SCHEDULED";
  fromStatus: string | null;
  toStatus: string | null;
  attempt: number | null;
  reason: string | null;
  at: string;
}

export async function currentCursor(db: Queryable): Promise<string> {
  const { rows } = await db.query("select throughline.current_cursor() as c");
  return rows[0].c;
}

export async function eventsAfter(db: Queryable, cursor: string, token?: string): Promise<{ cursor: string; events: ThroughlineEvent[] }> {
  const { rows } = await db.query({
    name: "throughline/events_after",
    text: "select next_cursor, events from throughline.events_after($1::text, $2::uuid)",
    values: [cursor, token ?? null],
  });
  return { cursor: rows[0].next_cursor, events: rows[0].events };
}
