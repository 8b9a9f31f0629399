// Several worker processes on one database, and a worker killed mid-step. Each worker here is a
// separate `throughline worker` process, as in production.
import { afterEach, expect, test } from "vitest";
import { spawnThroughline, testWorkflowsModule, type ThroughlineProcess } from "../processes.ts";
import { runEnded, startRunSql, stepsWithoutOneTerminalTransition, useTestDatabase, waitFor } from "../helpers.ts";

const db = useTestDatabase();
const processes: ThroughlineProcess[] = [];

function worker(extraEnv: Record<string, string> = {}): ThroughlineProcess {
  const p = spawnThroughline(["worker"], {
    DATABASE_URL: db.url,
    THROUGHLINE_WORKFLOWS: testWorkflowsModule,
    THROUGHLINE_WORKER_CONCURRENCY: "10",
    ...extraEnv,
  });
  processes.push(p);
  return p;
}

afterEach(async () => {
  for (const p of processes.splice(0)) {
    p.kill("SIGTERM");
    await p.exited;
  }
});

test("two worker processes complete 200 runs, every step reaching exactly one terminal status", async () => {
  const a = worker();
  const b = worker();
  await Promise.all([a.waitForOutput(/Throughline is ready/), b.waitForOutput(/Throughline is ready/)]);
  const tokens: string[] = [];
  for (let i = 0; i < 200; i++) {
    // Every 20th run fails at VULN_ANALYSIS after its retries, so cascades race with completions.
    const input = i % 20 === 0 ? { steps: { VULN_ANALYSIS: { fail: "retryable" } } } : {};
    tokens.push(await startRunSql(db.pool, "test_dag", input));
  }
  await waitFor(async () => {
    const { rows } = await db.pool.query("select count(*)::int as n from throughline.run where token = any($1) and status <> 'PENDING'", [tokens]);
    return rows[0].n === 200;
  }, { timeoutMs: 120_000, intervalMs: 200, what: "200 runs to end" });

  const runs = await db.pool.query("select status, count(*)::int as n from throughline.run where token = any($1) group by status order by status", [tokens]);
  expect(runs.rows).toEqual([{ status: "COMPLETED", n: 190 }, { status: "FAILED", n: 10 }]);
  // The event log: exactly one transition into a terminal status per step, and no step left open.
  expect(await stepsWithoutOneTerminalTransition(db.pool, tokens)).toEqual([]);
  const steps = await db.pool.query("select count(*)::int as n from throughline.step where token = any($1)", [tokens]);
  expect(steps.rows[0].n).toBe(1200);
  // Both processes did real work.
  const byWorker = await db.pool.query(
    "select count(distinct split_part(worker_id, ':', 2))::int as processes from throughline.step_attempt where token = any($1)", [tokens]);
  expect(byWorker.rows[0].processes).toBe(2);
});

test("a worker killed with SIGKILL mid-step: the step is retried after its lease and completes once", async () => {
  const lease = { THROUGHLINE_LEASE_SECONDS: "2", THROUGHLINE_RECLAIM_INTERVAL_SECONDS: "0.5" };
  const doomed = worker(lease);
  await doomed.waitForOutput(/Throughline is ready/);
  // The first attempt sleeps long enough to be killed in the middle; the retry is quick.
  const token = await startRunSql(db.pool, "test_single", { steps: { ONLY: { sleepMs: 3_000 } } });
  const stepId = (await db.pool.query("select id from throughline.step where token = $1", [token])).rows[0].id;
  await waitFor(async () => (await db.pool.query("select 1 from throughline.step_attempt where step_id = $1 and outcome = 'RUNNING'", [stepId])).rowCount,
    { what: "attempt 1 to start" });
  doomed.kill("SIGKILL");
  expect((await doomed.exited).signal).toBe("SIGKILL");

  const rescuer = worker(lease);
  await rescuer.waitForOutput(/Throughline is ready/);
  expect(await runEnded(db.pool, token, 30_000)).toBe("COMPLETED");
  const attempts = await db.pool.query("select attempt, outcome from throughline.step_attempt where step_id = $1 order by attempt", [stepId]);
  expect(attempts.rows).toEqual([{ attempt: 1, outcome: "LEASE_EXPIRED" }, { attempt: 2, outcome: "COMPLETED" }]);
  const completions = await db.pool.query("select count(*)::int as n from throughline.event where step_id = $1 and to_status = 'COMPLETED'", [stepId]);
  expect(completions.rows[0].n).toBe(1);
});
