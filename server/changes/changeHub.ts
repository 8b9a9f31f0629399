// The server's side of the change subscriptions: one LISTEN per server process, one read of the event
// log per notified transaction (on that same connection), fanned out in memory to every subscriber.
//
// Why it never misses or repeats a transition (cursors are pg_snapshots, sql/current/500-events.sql):
// - The hub reads the log in contiguous steps, changes_after(cursor) → (events, next cursor), and
//   hands each batch to the subscribers registered at that moment.
// - A subscriber registers first, then reads its own starting point in one statement: the current
//   state with its cursor C (no `after`), or the events after the client’s cursor up to C (`after`).
//   The hub’s cursor at registration was taken before C, so the hub’s later batches cover everything
//   after C; events those batches repeat are exactly the ones whose transaction is visible in C,
//   and are dropped. Each message carries the cursor of the batch it came from: resuming from it
//   with `after` continues exactly there.
//
// Why a slow or vanished subscriber cannot slow anything down: the database sees one LISTEN and one
// read per notified transaction whatever the number of subscribers; delivery only appends to a
// subscriber’s in-memory queue, which is bounded. A subscriber that falls too far behind is ended
// with an error that names the cursor to resume from, and its queue is freed.
import pg from "pg";
import { SafeError } from "postgraphile/grafast";
import type { Logger } from "../../src/log.ts";
import { parseCursor, visibleIn, type Snapshot } from "./snapshotCursor.ts";

export const eventsChannel = "throughline:events";
/** The hub's connection in pg_stat_activity. */
export const changeHubApplicationName = "throughline change hub";

/** One event as changes_after returns it (sql/current/800-graphql_api.sql). */
export interface ChangeEvent {
  seq: string;
  xid: string;
  token: string;
  workflow: string;
  subject: string | null;
  stepId: string | null;
  step: string | null;
  kind: string;
  fromStatus: string | null;
  toStatus: string | null;
  attempt: number | null;
  reason: string | null;
  at: string;
}

/** What a subscriber receives: a state (first message without `after`) or the changes after a cursor. */
export interface ChangesMessage {
  cursor: string;
  /** The current state of the runs, in the first message of a subscription without `after`; else null. */
  runs: unknown[] | null;
  events: ChangeEvent[];
}

/** What a subscription asks for (the GraphQL arguments). */
export interface ChangesTopic {
  token?: string | null;
  workflow?: string | null;
  subject?: string | null;
  after?: string | null;
  /** How many runs the initial state holds at most (runsChanges). */
  first?: number | null;
}

export interface ChangeHubOptions {
  pool: pg.Pool;
  /** For the LISTEN connection, which is kept out of the pool. */
  connectionString: string;
  log: Logger;
  /**
   * Read the log this often while anyone subscribes (ms). Only run-level events send a NOTIFY (a
   * NOTIFY in every step commit would serialise all commits: sql/current/900-inline_claims.sql), so
   * step events reach subscribers through this poll; one cheap query per server, not per subscriber.
   */
  pollIntervalMs?: number;
  /** Changes (events) a subscriber may let pile up unread before it is ended (default 10,000). */
  maxQueuedMessages?: number;
  /** Bytes a WebSocket may have waiting to be sent before its subscriber is considered too slow. */
  maxSocketBufferedBytes?: number;
}

/** The WebSocket a subscription is served on (grafserv's requestContext.ws.socket). */
export interface SubscriberSocket {
  readonly bufferedAmount: number;
  close(code?: number, reason?: string): void;
}

export interface ChangeHub {
  /** Grafast's GrafastSubscriber interface: the topic is a ChangesTopic, or one as JSON text. */
  subscribe(topic: ChangesTopic | string): Promise<AsyncIterableIterator<ChangesMessage>>;
  /**
   * The same, for subscriptions served on this socket: a client that does not read what it was sent
   * (the socket's send buffer keeps growing) is disconnected rather than buffered for without limit.
   */
  /**
   * Subscriptions of one request: its WebSocket (for back-pressure) and the subjects its API key may
   * see (null: all). The hub reads with the server's own connection, so it applies the key's scope
   * itself, with the same answers as row-level security gives (another subject's run "does not exist").
   */
  forSocket(socket: SubscriberSocket | undefined, subjects?: string[] | null): { subscribe(topic: ChangesTopic | string): Promise<AsyncIterableIterator<ChangesMessage>> };
  /** Number of live subscriptions (for tests and metrics). */
  subscriberCount(): number;
  close(): Promise<void>;
}

interface Batch {
  cursor: string;
  events: ChangeEvent[];
}

interface Subscriber {
  topic: ChangesTopic;
  /** The snapshot of the subscriber's starting point; undefined until it has been read. */
  baseline?: Snapshot;
  /** Hub batches that arrived before the starting point was read. */
  early: Batch[];
  deliver(batch: Batch): void;
  end(error?: Error): void;
}

function matches(topic: ChangesTopic, e: ChangeEvent): boolean {
  // null means "any", as in the SQL functions (an empty workflow name matches no run there, nor here).
  return (topic.token == null || e.token === topic.token)
    && (topic.workflow == null || e.workflow === topic.workflow)
    && (topic.subject == null || e.subject === topic.subject);
}

/**
 * A UUID as Postgres prints it (lowercase, hyphenated). Postgres also accepts uppercase, braces and
 * other hyphenation, and so does the GraphQL UUID scalar; events carry the printed form, so a topic
 * token is compared in that form.
 */
export function canonicalUuid(text: string): string {
  const hex = text.replace(/[{}-]/g, "").toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) return text;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export async function startChangeHub(options: ChangeHubOptions): Promise<ChangeHub> {
  const { pool } = options;
  const log = options.log.child({ component: "change-hub" });
  const maxQueued = options.maxQueuedMessages ?? 10_000;
  const maxSocketBuffered = options.maxSocketBufferedBytes ?? 8 * 1024 * 1024;
  const subscribers = new Set<Subscriber>();
  let closed = false;
  let cursor: string | undefined;
  // Stale: reads were skipped while nobody subscribed; the cursor must be renewed before anyone joins.
  let stale = true;
  let listenClient: pg.Client | undefined;

  // The hub reads on its LISTEN connection while it has one: one read at a time anyway, and never
  // queued behind the requests (and 500 subscriptions' first reads) sharing the pool.
  const reader = (): Pick<pg.Pool, "query"> => listenClient ?? pool;

  // Reads and cursor renewals run one at a time, in order.
  let lock: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = lock.then(fn);
    lock = p.catch(() => {});
    return p;
  };

  const renew = () => exclusive(async () => {
    // Subscribers joining together each ask for a renewal; only the first may move the cursor. Once
    // one of them has registered, the cursor is what its changes are read from, and moving it
    // forward would skip every change committed in between (found by 500 subscribers joining
    // during a load: a few never heard of their run again).
    if (!stale && cursor) return;
    const { rows } = await reader().query("select throughline.current_cursor() as c");
    cursor = rows[0].c;
    stale = false;
  });

  const readOnce = () => exclusive(async () => {
    if (closed) return;
    if (subscribers.size === 0 || !cursor) {
      stale = true;
      return;
    }
    const db = reader();
    let rows;
    try {
      ({ rows } = await db.query({
        name: "throughline/changes_after/all",
        text: "select next_cursor, events from throughline.changes_after($1::text)",
        values: [cursor],
      }));
    } catch (err) {
      // A read that failed on the hub's own connection (timed out, or the connection broke) may
      // have left it unusable: replace it. The cursor has not moved; the next read retries.
      if (db === listenClient && !closed) {
        dropListenClient(listenClient);
        setTimeout(() => void connect(), 500).unref();
      }
      throw err;
    }
    const batch: Batch = { cursor: rows[0].next_cursor, events: rows[0].events };
    // Advance and fan out in one synchronous step: a subscriber registered from now on gets the
    // batches after this cursor, and every one registered before got this batch.
    cursor = batch.cursor;
    for (const s of [...subscribers]) {
      try {
        s.deliver(batch);
      } catch (err) {
        // The cursor has moved on: a subscriber that cannot take this batch is ended (it resumes
        // from its cursor), and the others still get it.
        log.error({ err }, "delivering a batch to a subscriber failed; ending that subscription");
        s.end(new SafeError("This subscription could not be served and was ended; subscribe again with after: your last cursor."));
      }
    }
  });

  let reading = false;
  let again = false;
  const wake = () => {
    if (closed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    void (async () => {
      try {
        do {
          again = false;
          try {
            await readOnce();
          } catch (err) {
            if (!closed) {
              log.warn({ err }, "reading the event log failed; will retry");
              setTimeout(wake, 1000).unref();
            }
            break;
          }
        } while (again && !closed);
      } finally {
        reading = false;
      }
    })();
  };

  /** Drops the hub's connection (lost, or not answering) and connects again; reads use the pool meanwhile. */
  const dropListenClient = (client: pg.Client) => {
    if (listenClient === client) listenClient = undefined;
    // end() waits for the server; a connection that stopped answering is destroyed instead.
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    client.end().catch(() => {});
  };

  const connect = async (): Promise<void> => {
    while (!closed) {
      const client = new pg.Client({
        connectionString: options.connectionString,
        application_name: changeHubApplicationName,
        // A connection that silently went away (NAT timeout, failover without a reset) is noticed:
        // TCP keepalives, and reads that give up after 30 s (readOnce then drops this connection).
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        query_timeout: 30_000,
      });
      // This client's loss is handled once: by the loop below while connecting, by this handler after.
      let settled = false;
      client.on("error", (err) => {
        if (!settled) return; // connecting: the rejected call below handles it
        if (listenClient !== client) return; // already dropped
        log.warn({ err }, "LISTEN connection lost; reconnecting");
        dropListenClient(client);
        if (!closed) setTimeout(() => void connect(), 500).unref();
      });
      try {
        await client.connect();
        client.on("notification", wake);
        await client.query(`listen "${eventsChannel}"`);
        if (closed) {
          settled = true;
          await client.end().catch(() => {});
          return;
        }
        settled = true;
        listenClient = client;
        wake(); // catch up on anything committed while we were not listening
        return;
      } catch (err) {
        settled = true;
        dropListenClient(client);
        if (closed) return;
        log.warn({ err }, "could not LISTEN; retrying");
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  };
  await connect();
  const poll = setInterval(wake, options.pollIntervalMs ?? 50);
  poll.unref();

  async function subscribe(rawTopic: ChangesTopic | string, socket?: SubscriberSocket, subjects: string[] | null = null): Promise<AsyncIterableIterator<ChangesMessage>> {
    const topic: ChangesTopic = { ...(typeof rawTopic === "string" ? JSON.parse(rawTopic) : rawTopic) };
    if (topic.token != null) topic.token = canonicalUuid(topic.token);
    const inScope = (subject: string | null) => subjects === null || (subject !== null && subjects.includes(subject));
    if (closed) throw new SafeError("The server is shutting down; subscribe again with your cursor.");
    if (topic.after != null && !parseCursor(topic.after)) {
      throw new SafeError(`"${topic.after}" is not a cursor: pass the cursor of a message this API sent.`, { code: "TL422" });
    }
    const queue: ChangesMessage[] = [];
    let waiting: { resolve: (r: IteratorResult<ChangesMessage>) => void; reject: (e: Error) => void } | undefined;
    let finished = false;
    let failure: Error | undefined;
    let lastCursor = topic.after ?? undefined;
    // The first message (the state, or the catch-up after `after`) may be as large as it must be: it
    // is neither merged into nor counted against the limit below, or a resume with a large backlog
    // would be cut off every time it is tried.
    let firstMessage: ChangesMessage | undefined;

    const push = (message: ChangesMessage) => {
      if (finished) return;
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        lastCursor = message.cursor;
        w.resolve({ value: message, done: false });
        return;
      }
      // A subscriber still busy with earlier messages gets one message with everything since,
      // not one per poll: the message rate follows what the client can take, so a burst (or 500
      // subscribers on a small machine) never builds a queue whose latency only grows.
      const last = queue[queue.length - 1];
      if (!(last && last !== firstMessage && last.runs === null && message.runs === null)) {
        queue.push(message);
        return;
      }
      // concat, not push(...): a batch of a huge transaction would exceed the argument limit.
      last.events = last.events.concat(message.events);
      last.cursor = message.cursor;
      // Only a subscriber that lets changes pile up is cut off.
      const undelivered = queue.reduce((n, m) => (m === firstMessage ? n : n + m.events.length), 0);
      if (undelivered > maxQueued) {
        sub.end(new SafeError(lastCursor === undefined
          ? `This subscription fell more than ${maxQueued} changes behind before reading its first message and was ended; subscribe again (without after) to start from the current state.`
          : `This subscription fell more than ${maxQueued} changes behind and was ended; subscribe again with after: "${lastCursor}" to continue without loss.`,
          { code: "TL_SLOW_SUBSCRIBER", cursor: lastCursor ?? null }));
      }
    };

    const sub: Subscriber = {
      topic,
      early: [],
      deliver(batch) {
        if (finished) return;
        if (!sub.baseline) {
          sub.early.push(batch);
          if (sub.early.length > maxQueued) sub.end(new SafeError("Too many changes while this subscription started; try again."));
          return;
        }
        const baseline = sub.baseline;
        const events = batch.events.filter((e) => matches(topic, e) && inScope(e.subject) && !visibleIn(BigInt(e.xid), baseline));
        if (events.length) push({ cursor: batch.cursor, runs: null, events });
      },
      end(error) {
        if (finished) return;
        finished = true;
        failure = error;
        subscribers.delete(sub);
        queue.length = 0;
        sub.early = [];
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          if (error) w.reject(error);
          else w.resolve({ value: undefined, done: true });
        }
      },
    };

    // Register only with a fresh hub cursor (see the top of this file), in the same synchronous step
    // as the check.
    while (stale || !cursor) {
      if (closed) throw new SafeError("The server is shutting down; subscribe again with your cursor.");
      await renew();
    }
    if (closed) throw new SafeError("The server is shutting down; subscribe again with your cursor.");
    subscribers.add(sub);

    let first: ChangesMessage;
    try {
      if (topic.after != null) {
        const { rows } = await pool.query({
          name: "throughline/changes_after/filtered",
          text: "select next_cursor, events from throughline.changes_after($1::text, $2::uuid, $3::text, $4::text)",
          values: [topic.after, topic.token ?? null, topic.workflow ?? null, topic.subject ?? null],
        });
        first = { cursor: rows[0].next_cursor, runs: null, events: (rows[0].events as ChangeEvent[]).filter((e) => inScope(e.subject)) };
      } else {
        const { rows } = await pool.query({
          name: "throughline/runs_snapshot",
          text: "select cursor, runs from throughline.runs_snapshot($1::uuid, $2::text, $3::text, $4::integer)",
          values: [topic.token ?? null, topic.workflow ?? null, topic.subject ?? null, topic.first ?? 100],
        });
        first = { cursor: rows[0].cursor, runs: (rows[0].runs as { subject: string | null }[]).filter((r) => inScope(r.subject)), events: [] };
        if (topic.token && first.runs!.length === 0) {
          throw new SafeError(`Provided token ${topic.token} does not exist.`, { code: "TL404" });
        }
      }
    } catch (err) {
      sub.end();
      throw err;
    }
    sub.baseline = parseCursor(first.cursor)!;
    firstMessage = first;
    push(first);
    const early = sub.early;
    sub.early = [];
    for (const batch of early) sub.deliver(batch);

    const iterator: AsyncIterableIterator<ChangesMessage> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      next() {
        if (socket && socket.bufferedAmount > maxSocketBuffered && !finished) {
          // The client stopped reading: free what we hold and hang up; it resumes with its cursor.
          sub.end();
          socket.close(1013, "Subscriber too slow; subscribe again with after: your last cursor");
          return Promise.resolve({ value: undefined, done: true });
        }
        if (queue.length) {
          const value = queue.shift()!;
          lastCursor = value.cursor;
          return Promise.resolve({ value, done: false });
        }
        if (failure) {
          const e = failure;
          failure = undefined;
          return Promise.reject(e);
        }
        if (finished) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          waiting = { resolve, reject };
        });
      },
      return() {
        sub.end();
        return Promise.resolve({ value: undefined, done: true });
      },
      throw(error?: unknown) {
        sub.end();
        return Promise.reject(error);
      },
    };
    return iterator;
  }

  return {
    subscribe: (topic) => subscribe(topic),
    forSocket: (socket, subjects) => ({ subscribe: (topic) => subscribe(topic, socket, subjects ?? null) }),
    subscriberCount: () => subscribers.size,
    async close() {
      closed = true;
      clearInterval(poll);
      for (const s of [...subscribers]) s.end();
      await lock;
      await listenClient?.end().catch(() => {});
      listenClient = undefined;
    },
  };
}
