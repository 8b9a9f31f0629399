// Postgres restarted while a server process serves a WebSocket subscriber during a load: the server
// reconnects by itself (GraphQL and REST answer again), and the subscriber — resubscribing with its
// last cursor whenever its socket or subscription fails — ends up with every transition of the
// event log exactly once. This test runs its own Postgres, since it stops it.
import path from "node:path";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, expect, test } from "vitest";
import pg from "pg";
import { createClient, type Client } from "graphql-ws";
import { makeTempDir, startLocalPostgres, type LocalPostgres } from "../../src/postgres/localPostgres.ts";
import { createApiKey } from "../../src/db/apiKeys.ts";
import { prepareDatabase } from "../globalSetup.ts";
import { spawnThroughline, testWorkflowsModule, type ThroughlineProcess } from "../processes.ts";
import { startServeProcess, type ServeProcess } from "../serverProcess.ts";
import { startLoadUntilSomeEnd, TestWebSocket, waitFor } from "../helpers.ts";

const dir = makeTempDir("tl-restart-srv-");
const port = 60000 + (process.pid % 900);
const settings = { fsync: "off" };
let postgres: LocalPostgres;
let url: string;
let apiKey: string;
let server: ServeProcess;
let worker: ThroughlineProcess;
let rescuer: ThroughlineProcess | undefined;

beforeAll(async () => {
  postgres = await startLocalPostgres({ dataDir: path.join(dir, "data"), port, settings });
  url = postgres.url;
  await prepareDatabase(url);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  apiKey = (await createApiKey(pool, { name: "restart-test", role: "admin" })).apiKey;
  await pool.end();
  worker = spawnThroughline(["worker"], {
    DATABASE_URL: url, THROUGHLINE_WORKFLOWS: testWorkflowsModule, LOG_LEVEL: "warn",
    THROUGHLINE_LEASE_SECONDS: "2", THROUGHLINE_RECLAIM_INTERVAL_SECONDS: "0.5",
  });
  server = await startServeProcess(url, apiKey, { LOG_LEVEL: "warn" });
  await worker.waitForOutput(/Throughline is ready/);
}, 90_000);
afterAll(async () => {
  for (const p of [worker, rescuer, server?.process]) p?.kill("SIGKILL");
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface ReceivedEvent {
  seq: string;
  kind: string;
}

/**
 * A subscriber that keeps its last cursor and, whenever its socket or subscription fails, subscribes
 * again with `after: cursor` (on a new connection, after a short pause) until stopped.
 */
function resilientSubscriber(wsUrl: string, key: string) {
  const received: ReceivedEvent[] = [];
  let cursor: string | null = null;
  let stopped = false;
  let client: Client | undefined;
  let failures = 0;
  let subscriptions = 0;
  let firstMessage: () => void = () => {};
  const ready = new Promise<void>((r) => (firstMessage = r));
  const query = "subscription($after: String) { runsChanges(workflow: \"test_dag\", after: $after, first: 1000) { cursor runs { token } events { seq kind } } }";

  const loop = async () => {
    while (!stopped) {
      client = createClient({ url: wsUrl, webSocketImpl: TestWebSocket, connectionParams: { "X-Api-Key": key }, retryAttempts: 0, lazy: false, onNonLazyError: () => {} });
      subscriptions++;
      await new Promise<void>((done) => {
        client!.subscribe<{ runsChanges: { cursor: string; runs: unknown[] | null; events: ReceivedEvent[] } }>({ query, variables: { after: cursor } }, {
          next: (m) => {
            if (!m.data) return; // an error result: the subscription ends with error() or complete()
            received.push(...m.data.runsChanges.events);
            cursor = m.data.runsChanges.cursor;
            firstMessage();
          },
          error: () => (failures++, done()),
          complete: () => done(),
        });
      });
      // A client whose connection attempt failed rejects dispose() with that failure: already handled.
      await Promise.resolve(client.dispose()).catch(() => {});
      if (!stopped) await new Promise((r) => setTimeout(r, 300));
    }
  };
  const running = loop();
  return {
    received, ready,
    stats: () => ({ failures, subscriptions, cursor }),
    /** Drops the current connection (as a network failure would); the loop resubscribes with its cursor. */
    drop: () => void client?.terminate(),
    async stop() {
      stopped = true;
      if (client) await Promise.resolve(client.dispose()).catch(() => {});
      await running;
    },
  };
}

test("a server and its WebSocket subscriber survive a Postgres restart mid-load: every transition delivered exactly once", async () => {
  const subscriber = resilientSubscriber(server.wsUrl, apiKey);
  await subscriber.ready; // subscribed (its first message carries the cursor) before the load starts

  const tokens = await startLoadUntilSomeEnd(url);

  await postgres.stop(); // fast shutdown: in-flight transactions roll back, every connection drops
  // The subscriber's own connection fails too, while Postgres is down: it resubscribes with its
  // cursor, and keeps trying until the server can serve it again.
  subscriber.drop();
  await new Promise((r) => setTimeout(r, 1000));
  postgres = await startLocalPostgres({ dataDir: path.join(dir, "data"), port, settings });
  // Workers surviving the restart is postgres_restart.test.ts's claim; this file is about the server
  // and its subscribers. A second worker started now (as a supervisor would) finishes the load even
  // when the first one does not recover (at the time of writing graphile-worker's runner stops on
  // ECONNREFUSED: "Runner stopping (reason: worker pool exited with error …)").
  rescuer = spawnThroughline(["worker"], {
    DATABASE_URL: url, THROUGHLINE_WORKFLOWS: testWorkflowsModule, LOG_LEVEL: "warn",
    THROUGHLINE_LEASE_SECONDS: "2", THROUGHLINE_RECLAIM_INTERVAL_SECONDS: "0.5",
  });

  // The server answers again by itself: GraphQL and REST.
  const probe = tokens[tokens.length - 1];
  await waitFor(async () => {
    const g = await server.graphql("query($t: UUID!) { run(token: $t) { token } }", { t: probe }).catch(() => undefined);
    const r = await server.rest("GET", `/api/v1/workflow/token/${probe}/status`).catch(() => undefined);
    return g?.status === 200 && g.body.data?.run?.token === probe && r?.status === 200;
  }, { timeoutMs: 30_000, intervalMs: 250, what: "the server to answer GraphQL and REST after the restart" });
  // …and takes new work: runs started through it after the restart.
  for (let i = 0; i < 10; i++) {
    const r = await server.graphql("mutation { startRun(input: { workflow: \"test_dag\" }) { result { token } } }");
    expect(r.body.errors, JSON.stringify(r.body.errors)).toBeUndefined();
    tokens.push(r.body.data.startRun.result.token);
  }

  const after = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await waitFor(async () => (await after.query("select count(*)::int as n from throughline.run where status = 'PENDING'")).rows[0].n === 0,
      { timeoutMs: 40_000, intervalMs: 250, what: "every run to end after the restart" }).catch(async (e) => {
      const open = await after.query(`select step, status, attempt, locked_by, lease_expires_at, ready_at from throughline.step
        where status in ('PENDING','TIMED_OUT') and ready_at is not null limit 5`);
      const jobs = await after.query("select task_identifier, attempts, max_attempts, run_at, locked_at, last_error from graphile_worker.jobs limit 5");
      throw new Error(`${e.message}\nopen steps: ${JSON.stringify(open.rows)}\njobs: ${JSON.stringify(jobs.rows)}\nworker:\n${worker.output().slice(-3000)}\nsecond worker:\n${rescuer?.output().slice(-3000)}`);
    });
    const statuses = await after.query("select status, count(*)::int as n from throughline.run group by status");
    expect(statuses.rows).toEqual([{ status: "COMPLETED", n: 110 }]);

    // The subscriber has every transition of the log exactly once, in order.
    const logSeqs = async () => (await after.query(
      "select e.seq::text as seq from throughline.event e join throughline.run r on r.token = e.token where r.workflow = 'test_dag' order by e.seq")).rows.map((r) => r.seq as string);
    const expected = await logSeqs();
    await waitFor(async () => subscriber.received.length >= expected.length, { timeoutMs: 20_000, intervalMs: 100, what: `the subscriber to receive ${expected.length} events (has ${subscriber.received.length}; ${JSON.stringify(subscriber.stats())})` }).catch(() => {});
    await new Promise((r) => setTimeout(r, 500)); // anything extra (a duplicate) would arrive now
    await subscriber.stop();
    console.info(`subscriber: ${JSON.stringify(subscriber.stats())}, ${subscriber.received.length} events`);
    expect(subscriber.stats().subscriptions).toBeGreaterThan(1);
    const got = subscriber.received.map((e) => e.seq);
    const duplicates = got.filter((s, i) => got.indexOf(s) !== i);
    expect(duplicates).toEqual([]);
    expect([...got].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0))).toEqual(expected);
    expect(await logSeqs()).toEqual(expected); // nothing written after the comparison
  } finally {
    await subscriber.stop();
    await after.end();
  }
  expect(server.process.child.exitCode).toBeNull(); // still running, reconnected by itself
}, 120_000);
