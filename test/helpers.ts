// Test helpers: a database per test file (copied from the migrated template), factories, and a
// patient wait for asynchronous outcomes (never a timing assertion).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, inject } from "vitest";
import pg from "pg";
import WebSocket from "ws";
import { createLogger } from "../src/log.ts";
import { projectRoot } from "../src/config.ts";
import type { TestServer } from "./globalSetup.ts";
import { startWorker, type ThroughlineWorker } from "../src/runtime/worker.ts";
import { tasksOf } from "../src/workflows/definition.ts";
import { workflows } from "../src/workflows/index.ts";
import { testWorkflows } from "./fixtures/testWorkflows.ts";

/**
 * The `ws` WebSocket for graphql-ws clients in tests, with an `error` listener of its own. graphql-ws
 * removes its listener when a client is terminated; a socket terminated while still connecting then
 * emits "WebSocket was closed before the connection was established" with no listener, and Node
 * turns that into an uncaught exception of the test file. graphql-ws still hears every error through
 * `onerror` while it listens.
 */
export class TestWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on("error", () => {});
  }
}

export const servers = (): TestServer[] => inject("servers");
export const newestServer = (): TestServer => servers()[0];

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  name: string;
}

function withDatabase(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A fresh database (a copy of the migrated template) on the server, dropped after the file. */
export function useTestDatabase(server: () => TestServer = newestServer): TestDatabase {
  const db = {} as TestDatabase;
  beforeAll(async () => {
    const s = server();
    db.name = `tl_test_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: s.adminUrl });
    await admin.connect();
    await admin.query(`create database ${db.name} template tl_template`);
    await admin.end();
    db.url = withDatabase(s.adminUrl, db.name);
    db.pool = new pg.Pool({ connectionString: db.url, max: 20 });
    db.pool.on("error", () => {});
  });
  afterAll(async () => {
    await db.pool?.end();
    const admin = new pg.Client({ connectionString: server().adminUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${db.name} with (force)`);
    await admin.end();
  });
  return db;
}

/** Runs fn in a transaction that is always rolled back. */
export async function withTx<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    return await fn(client);
  } finally {
    await client.query("rollback").catch(() => {});
    client.release();
  }
}

/** Polls until fn returns a truthy value (returned), or fails with the last value after timeoutMs. */
export async function waitFor<T>(fn: () => Promise<T>, { timeoutMs = 30_000, intervalMs = 25, what = "condition" } = {}): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const testLog = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");

/** An in-process worker for the shipped and test workflows, with short leases for tests. */
export async function startTestWorker(pool: pg.Pool, overrides: Partial<Parameters<typeof startWorker>[0]["config"]> = {}): Promise<ThroughlineWorker> {
  return startWorker({
    pool,
    log: testLog,
    tasks: tasksOf([...workflows, ...testWorkflows]),
    config: {
      THROUGHLINE_WORKER_CONCURRENCY: 10,
      THROUGHLINE_LEASE_SECONDS: 30,
      THROUGHLINE_INLINE_CLAIMS: 4,
      THROUGHLINE_RECLAIM_INTERVAL_SECONDS: 1,
      THROUGHLINE_MAINTENANCE_CRON: "0 0 1 1 *",
      THROUGHLINE_RETENTION_HOURS: 72,
      THROUGHLINE_PURGE_BATCH_SIZE: 100,
      ...overrides,
    },
  });
}

/**
 * An in-process worker for the current file or describe block: started before its tests, stopped
 * after them (before the database is dropped: after-hooks run in reverse order).
 */
export function useTestWorker(db: TestDatabase): void {
  let worker: ThroughlineWorker | undefined;
  beforeAll(async () => {
    worker = await startTestWorker(db.pool);
  });
  afterAll(async () => {
    await worker?.stop();
  });
}

/**
 * Steps (of these runs) whose event log does not show exactly one transition into a terminal
 * status: none may be missing one, and none may have ended twice.
 */
export async function stepsWithoutOneTerminalTransition(db: pg.Pool, tokens: string[]): Promise<{ id: string; n: number }[]> {
  const { rows } = await db.query(
    `select s.id, count(e.seq)::int as n
       from throughline.step s
       left join throughline.event e on e.step_id = s.id and e.kind = 'STEP_STATUS'
         and e.to_status in ('COMPLETED', 'FAILED', 'CANCELLED', 'NOT_APPLICABLE')
      where s.token = any($1)
      group by s.id having count(e.seq) <> 1`, [tokens]);
  return rows;
}

export interface StepState {
  step: string;
  status: string;
  failure_reason: string | null;
  status_reason: string | null;
  updated_at: Date;
  attempt: number;
  output: unknown;
}

export async function stepsOf(db: pg.Pool | pg.PoolClient, token: string): Promise<Record<string, StepState>> {
  const { rows } = await db.query<StepState>(
    "select step, status, failure_reason, status_reason, updated_at, attempt, output from throughline.step where token = $1 order by id", [token]);
  return Object.fromEntries(rows.map((r) => [r.step, r]));
}

export async function runStatus(db: pg.Pool | pg.PoolClient, token: string): Promise<string | undefined> {
  const { rows } = await db.query("select status from throughline.run where token = $1", [token]);
  return rows[0]?.status;
}

/** Waits until the run has ended, returning its status. */
export function runEnded(db: pg.Pool, token: string, timeoutMs = 30_000): Promise<string> {
  return waitFor(async () => {
    const s = await runStatus(db, token);
    return s && s !== "PENDING" ? s : undefined;
  }, { timeoutMs, what: `run ${token} to end` });
}

/** Starts a run through SQL; returns its token. */
export async function startRunSql(db: pg.Pool | pg.PoolClient, workflow: string, input: unknown, opts: { subject?: string; token?: string } = {}): Promise<string> {
  const { rows } = await db.query("select token from throughline.start_run($1, $2::jsonb, $3, '{}', $4::uuid)",
    [workflow, JSON.stringify(input), opts.subject ?? null, opts.token ?? null]);
  return rows[0].token;
}

/**
 * The load the Postgres-restart tests interrupt: `runs` runs of test_dag (a 30 ms step in each), started
 * one by one, returning once at least 10 have ended (so the restart hits runs in every state).
 */
export async function startLoadUntilSomeEnd(url: string, runs = 100): Promise<string[]> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  try {
    const tokens: string[] = [];
    for (let i = 0; i < runs; i++) tokens.push(await startRunSql(pool, "test_dag", { steps: { VULN_ANALYSIS: { sleepMs: 30 } } }));
    await waitFor(async () => (await pool.query("select count(*)::int as n from throughline.run where status <> 'PENDING'")).rows[0].n >= 10,
      { what: "some runs to end" });
    return tokens;
  } finally {
    await pool.end();
  }
}

export const bom = {
  /** The example BOM of the README (test/fixtures/bom-with-components.json). */
  withComponents: JSON.parse(readFileSync(path.join(projectRoot, "test/fixtures/bom-with-components.json"), "utf8")),
  empty: { bomFormat: "CycloneDX", specVersion: "1.5", version: 1, components: [] },
};
