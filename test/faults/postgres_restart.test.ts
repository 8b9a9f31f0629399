// Postgres restarted in the middle of a load: worker processes reconnect by themselves, and no run
// is lost or stuck. This test runs its own Postgres, since it stops it.
import path from "node:path";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, expect, test } from "vitest";
import pg from "pg";
import { makeTempDir, startLocalPostgres, type LocalPostgres } from "../../src/postgres/localPostgres.ts";
import { prepareDatabase } from "../globalSetup.ts";
import { spawnThroughline, testWorkflowsModule, type ThroughlineProcess } from "../processes.ts";
import { startLoadUntilSomeEnd, stepsWithoutOneTerminalTransition, waitFor } from "../helpers.ts";

const dir = makeTempDir("tl-restart-");
const port = 57000 + (process.pid % 900);
let server: LocalPostgres;
let url: string;
const workers: ThroughlineProcess[] = [];

beforeAll(async () => {
  server = await startLocalPostgres({ dataDir: path.join(dir, "data"), port, settings: { fsync: "off" } });
  url = server.url;
  await prepareDatabase(url);
});
afterAll(async () => {
  for (const w of workers) w.kill("SIGKILL");
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("workers reconnect after Postgres restarts mid-load, and every run ends", async () => {
  for (let i = 0; i < 2; i++) {
    const w = spawnThroughline(["worker"], {
      DATABASE_URL: url, THROUGHLINE_WORKFLOWS: testWorkflowsModule,
      THROUGHLINE_LEASE_SECONDS: "2", THROUGHLINE_RECLAIM_INTERVAL_SECONDS: "0.5",
    });
    workers.push(w);
    await w.waitForOutput(/Throughline is ready/);
  }
  const tokens = await startLoadUntilSomeEnd(url);

  await server.stop(); // fast shutdown: in-flight transactions roll back, connections drop
  await new Promise((r) => setTimeout(r, 1000));
  server = await startLocalPostgres({ dataDir: path.join(dir, "data"), port, settings: { fsync: "off" } });

  const after = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await waitFor(async () => (await after.query("select count(*)::int as n from throughline.run where status = 'PENDING'")).rows[0].n === 0,
      { timeoutMs: 40_000, intervalMs: 250, what: "every run to end after the restart" }).catch(async (e) => {
      const open = await after.query("select step, status, attempt, locked_by, lease_expires_at, ready_at from throughline.step where status in ('PENDING','TIMED_OUT') and ready_at is not null limit 5");
      throw new Error(`${e.message}\nopen steps: ${JSON.stringify(open.rows)}\nworker 1:\n${workers[0].output().slice(-12000)}`);
    });
    const statuses = await after.query("select status, count(*)::int as n from throughline.run group by status");
    expect(statuses.rows).toEqual([{ status: "COMPLETED", n: 100 }]);
    expect(await stepsWithoutOneTerminalTransition(after, tokens)).toEqual([]);
  } finally {
    await after.end();
  }
  for (const w of workers) expect(w.child.exitCode).toBeNull(); // still running, reconnected
});
