// In-process listeners for step and run changes. They hear of a change only after it has committed:
// the stream reads the event log (throughline.events_after) when Postgres delivers the
// transaction's NOTIFY (sent at commit, never for a rolled-back transaction), and on a slow poll in
// case a notification was lost. A listener that throws is logged and skipped: it cannot change,
// delay or roll back anything in the database, nor stop other listeners.
import pg from "pg";
import type { Logger } from "../log.ts";
import { currentCursor, eventsAfter, type ThroughlineEvent } from "../db/events.ts";

export type EventListener = (event: ThroughlineEvent) => void | Promise<void>;

export interface EventStream {
  /** Adds a listener; returns a function that removes it. */
  subscribe(listener: EventListener): () => void;
  /** The cursor up to which events have been delivered. */
  cursor(): string;
  close(): Promise<void>;
}

export interface EventStreamOptions {
  connectionString: string;
  pool: pg.Pool;
  log: Logger;
  /** Start after this cursor (default: now). */
  after?: string;
  /**
   * Read the log this often while there are listeners (ms): only run-level events send a NOTIFY
   * (sql/current/900-inline_claims.sql), step events arrive through this poll.
   */
  pollIntervalMs?: number;
}

export const eventsChannel = "throughline:events";

export async function openEventStream(options: EventStreamOptions): Promise<EventStream> {
  const { pool } = options;
  const log = options.log.child({ component: "event-stream" });
  const listeners = new Set<EventListener>();
  let cursor = options.after ?? (await currentCursor(pool));
  let closed = false;
  let listenClient: pg.Client | undefined;
  let reading: Promise<void> | undefined;
  let again = false;

  const deliver = async (event: ThroughlineEvent) => {
    for (const listener of [...listeners]) {
      try {
        await listener(event);
      } catch (err) {
        log.warn({ err, seq: event.seq }, "event listener failed; the change itself stands");
      }
    }
  };

  // One reader at a time; a wake-up during a read schedules exactly one more read.
  const read = (): Promise<void> => {
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      do {
        again = false;
        try {
          const batch = await eventsAfter(pool, cursor);
          cursor = batch.cursor;
          for (const event of batch.events) await deliver(event);
        } catch (err) {
          if (!closed) log.warn({ err }, "reading the event log failed; will retry");
        }
      } while (again && !closed);
      reading = undefined;
    })();
    return reading;
  };

  const connect = async () => {
    while (!closed) {
      const client = new pg.Client({ connectionString: options.connectionString });
      try {
        await client.connect();
        client.on("notification", () => void read());
        client.on("error", (err) => {
          log.warn({ err }, "event listener connection lost; reconnecting");
          client.end().catch(() => {});
          if (listenClient === client) listenClient = undefined;
          if (!closed) setTimeout(() => void connect(), 500);
        });
        await client.query(`listen "${eventsChannel}"`);
        listenClient = client;
        void read(); // catch up on anything committed while we were not listening
        return;
      } catch (err) {
        await client.end().catch(() => {});
        log.warn({ err }, "could not LISTEN; retrying");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  await connect();
  const poll = setInterval(() => listeners.size > 0 && void read(), options.pollIntervalMs ?? 50);

  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    cursor: () => cursor,
    async close() {
      closed = true;
      clearInterval(poll);
      await reading;
      await listenClient?.end().catch(() => {});
    },
  };
}
