// Persist first, then notify (StackRox #21225), tested the way StackRox did: the order, a failing
// listener leaves the data, a failed persist notifies no one. Plus: one NOTIFY per transaction,
// and a reader resuming from its cursor gets exactly what it missed.
import { afterAll, beforeAll, expect, test } from "vitest";
import pg from "pg";
import { runEnded, startRunSql, testLog, useTestDatabase, useTestWorker, waitFor } from "../helpers.ts";
import { openEventStream, eventsChannel } from "../../src/runtime/eventStream.ts";
import type { ThroughlineEvent } from "../../src/db/events.ts";

const db = useTestDatabase();
useTestWorker(db);
let observer: pg.Pool;
beforeAll(async () => {
  observer = new pg.Pool({ connectionString: db.url, max: 2 });
});
afterAll(async () => {
  await observer?.end();
});

test("a listener hears of a step only once another connection can already see it", async () => {
  const stream = await openEventStream({ connectionString: db.url, pool: db.pool, log: testLog });
  const seenByOthers: string[] = [];
  stream.subscribe(async (e) => {
    if (e.kind !== "STEP_STATUS") return;
    const { rows } = await observer.query("select status from throughline.step where id = $1", [e.stepId]);
    seenByOthers.push(`${e.step}:${e.toStatus}=${rows[0].status}`);
  });
  const token = await startRunSql(db.pool, "test_dag", {});
  await runEnded(db.pool, token);
  await waitFor(async () => seenByOthers.length === 6, { what: "six step events" });
  await stream.close();
  for (const entry of seenByOthers) {
    const [, status, persisted] = /^[A-Z_]+:([A-Z_]+)=([A-Z_]+)$/.exec(entry)!;
    expect(persisted).toBe(status);
  }
});

test("a listener that throws changes nothing: the run completes and other listeners hear everything", async () => {
  const stream = await openEventStream({ connectionString: db.url, pool: db.pool, log: testLog });
  let thrown = 0;
  const heard: ThroughlineEvent[] = [];
  stream.subscribe(() => {
    thrown++;
    throw new Error("notifier is broken");
  });
  stream.subscribe((e) => void heard.push(e));
  const token = await startRunSql(db.pool, "test_dag", {});
  expect(await runEnded(db.pool, token)).toBe("COMPLETED");
  await waitFor(async () => heard.some((e) => e.token === token && e.kind === "RUN_ENDED"), { what: "RUN_ENDED" });
  await stream.close();
  expect(thrown).toBeGreaterThan(0);
  const statuses = heard.filter((e) => e.token === token && e.kind === "STEP_STATUS").map((e) => e.toStatus);
  expect(statuses).toEqual(Array(6).fill("COMPLETED"));
  const { rows } = await db.pool.query("select count(*)::int as n from throughline.step where token = $1 and status = 'COMPLETED'", [token]);
  expect(rows[0].n).toBe(6);
});

test("a transaction that rolls back notifies no one", async () => {
  const stream = await openEventStream({ connectionString: db.url, pool: db.pool, log: testLog });
  const heard: ThroughlineEvent[] = [];
  stream.subscribe((e) => void heard.push(e));
  const client = await db.pool.connect();
  let rolledBack: string;
  try {
    await client.query("begin");
    rolledBack = await startRunSql(client, "test_single", { steps: { ONLY: { sleepMs: 60_000 } } });
    await client.query("rollback");
  } finally {
    client.release();
  }
  // A committed run after it: once we hear of that one, we would have heard of the first.
  const committed = await startRunSql(db.pool, "test_single", {});
  await waitFor(async () => heard.some((e) => e.token === committed && e.kind === "RUN_ENDED"), { what: "committed run" });
  await stream.close();
  expect(heard.filter((e) => e.token === rolledBack)).toEqual([]);
});

test("one transaction sends one notification, however many events it writes", async () => {
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  let notifications = 0;
  listener.on("notification", (n) => n.channel === eventsChannel && notifications++);
  await listener.query(`listen "${eventsChannel}"`);
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    const token = await startRunSql(client, "test_dag", { steps: { BOM_CONSUMPTION: { sleepMs: 60_000 } } });
    await client.query("update throughline.step set status = 'FAILED', failure_reason = 'x' where token = $1 and step = 'BOM_CONSUMPTION'", [token]);
    const events = await client.query("select count(*)::int as n from throughline.event where token = $1", [token]);
    expect(events.rows[0].n).toBeGreaterThan(5);
    await client.query("commit");
  } finally {
    client.release();
  }
  await listener.query("select 1"); // notifications arrive before the next query's answer
  await new Promise((r) => setTimeout(r, 100));
  await listener.end();
  expect(notifications).toBe(1);
});

test("a reader that resumes from its cursor receives exactly what it missed, no gap, no duplicate", async () => {
  const first = await openEventStream({ connectionString: db.url, pool: db.pool, log: testLog });
  const seen: ThroughlineEvent[] = [];
  first.subscribe((e) => void seen.push(e));
  const a = await startRunSql(db.pool, "test_dag", {});
  await runEnded(db.pool, a);
  await waitFor(async () => seen.some((e) => e.token === a && e.kind === "RUN_ENDED"), { what: "first run to be heard" });
  await first.close();
  const cursor = first.cursor();
  const missed = await startRunSql(db.pool, "test_dag", {});
  await runEnded(db.pool, missed);
  const second = await openEventStream({ connectionString: db.url, pool: db.pool, log: testLog, after: cursor });
  const resumed: ThroughlineEvent[] = [];
  second.subscribe((e) => void resumed.push(e));
  await waitFor(async () => resumed.some((e) => e.token === missed && e.kind === "RUN_ENDED"), { what: "the missed run" });
  await second.close();
  const all = (await db.pool.query("select seq::int from throughline.event where token = any($1) order by seq", [[a, missed]])).rows.map((r) => r.seq);
  const heard = [...seen, ...resumed].filter((e) => e.token === a || e.token === missed).map((e) => e.seq);
  expect(heard).toEqual(all); // in order, none missing, none twice
  expect(resumed.every((e) => e.token === missed)).toBe(true);
});
