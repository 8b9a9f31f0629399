// A small cluster, as production runs it: two `throughline worker` processes and two `throughline
// serve` processes on one database. 1,000 runs of test_dag are submitted through both servers
// (GraphQL startRun, alternating) and through SQL; every run ends, the event log holds exactly one
// terminal transition per step, and both servers answer the same (REST status, GraphQL run(token),
// searchRuns counts).
import { afterAll, beforeAll, expect, test } from "vitest";
import { createApiKey } from "../../src/db/apiKeys.ts";
import { spawnThroughline, testWorkflowsModule, type ThroughlineProcess } from "../processes.ts";
import { startServeProcess, type ServeProcess } from "../serverProcess.ts";
import { startRunSql, stepsWithoutOneTerminalTransition, useTestDatabase, waitFor } from "../helpers.ts";

const db = useTestDatabase();
const workers: ThroughlineProcess[] = [];
const servers: ServeProcess[] = [];
const RUNS = 1000;

beforeAll(async () => {
  const { apiKey } = await createApiKey(db.pool, { name: "cluster-test", role: "admin" });
  for (let i = 0; i < 2; i++) {
    workers.push(spawnThroughline(["worker"], {
      DATABASE_URL: db.url, THROUGHLINE_WORKFLOWS: testWorkflowsModule, THROUGHLINE_WORKER_CONCURRENCY: "20", LOG_LEVEL: "warn",
    }));
  }
  const [a, b] = await Promise.all([startServeProcess(db.url, apiKey, { LOG_LEVEL: "info" }), startServeProcess(db.url, apiKey, { LOG_LEVEL: "info" })]);
  servers.push(a, b);
  await Promise.all(workers.map((w) => w.waitForOutput(/Throughline is ready/, 60_000)));
}, 90_000);
afterAll(async () => {
  for (const p of [...workers, ...servers.map((s) => s.process)]) p.kill("SIGTERM");
  await Promise.all([...workers, ...servers.map((s) => s.process)].map((p) => p.exited));
});

const startRun = "mutation($input: StartRunInput!) { startRun(input: $input) { result { token } } }";

test(`two workers and two servers: ${RUNS} runs submitted through both servers and SQL all end, once per step, and both servers agree`, async () => {
  const [a, b] = servers;
  const tokens: string[] = new Array(RUNS);
  // Every 50th run fails at VULN_ANALYSIS after its retries, so cancellations race with completions.
  const inputOf = (i: number) => (i % 50 === 0 ? { steps: { VULN_ANALYSIS: { fail: "retryable" } } } : {});
  const submit = async (i: number) => {
    if (i % 2 === 0) {
      const server = i % 4 === 0 ? a : b; // GraphQL, alternating between the two servers
      const r = await server.graphql(startRun, { input: { workflow: "test_dag", input: inputOf(i), labels: { batch: "cluster", via: "graphql" } } });
      expect(r.body.errors, JSON.stringify(r.body.errors)).toBeUndefined();
      tokens[i] = r.body.data.startRun.result.token;
    } else {
      tokens[i] = await startRunSql(db.pool, "test_dag", inputOf(i));
    }
  };
  for (let i = 0; i < RUNS; i += 25) await Promise.all(Array.from({ length: Math.min(25, RUNS - i) }, (_, k) => submit(i + k)));
  expect(new Set(tokens).size).toBe(RUNS);

  await waitFor(async () => {
    const { rows } = await db.pool.query("select count(*)::int as n from throughline.run where token = any($1) and status <> 'PENDING'", [tokens]);
    return rows[0].n === RUNS;
  }, { timeoutMs: 120_000, intervalMs: 250, what: `${RUNS} runs to end` });

  const runs = await db.pool.query("select status, count(*)::int as n from throughline.run where token = any($1) group by status order by status", [tokens]);
  expect(runs.rows).toEqual([{ status: "COMPLETED", n: RUNS - RUNS / 50 }, { status: "FAILED", n: RUNS / 50 }]);
  const steps = await db.pool.query("select count(*)::int as n from throughline.step where token = any($1)", [tokens]);
  expect(steps.rows[0].n).toBe(RUNS * 6);
  // The event log: exactly one transition into a terminal status per step.
  expect(await stepsWithoutOneTerminalTransition(db.pool, tokens)).toEqual([]);
  // Both worker processes did real work.
  const byWorker = await db.pool.query(
    "select count(distinct split_part(worker_id, ':', 2))::int as processes from throughline.step_attempt where token = any($1)", [tokens]);
  expect(byWorker.rows[0].processes).toBe(2);

  // Both servers give the same answers: REST status and GraphQL run(token) for a sample of tokens…
  const sample = tokens.filter((_, i) => i % 20 === 0 || i % 37 === 1);
  const runQuery = `query($t: UUID!) { isProcessing(token: $t) run(token: $t) { token workflow status subject labels createdAt updatedAt completedAt
    steps(orderBy: ID_ASC) { nodes { id step status startedAt updatedAt failureReason attempt parentStepId } } } }`;
  for (const t of sample) {
    const [ra, rb] = await Promise.all([a.rest("GET", `/api/v1/workflow/token/${t}/status`), b.rest("GET", `/api/v1/workflow/token/${t}/status`)]);
    expect(ra.status).toBe(200);
    expect(JSON.parse(ra.text)).toHaveLength(6);
    expect(rb).toEqual(ra);
    const [ga, gb] = await Promise.all([a.graphql(runQuery, { t }), b.graphql(runQuery, { t })]);
    expect(ga.body.errors).toBeUndefined();
    expect(ga.body.data.run.steps.nodes).toHaveLength(6);
    expect(ga.body.data.isProcessing).toBe(false);
    expect(gb.body).toEqual(ga.body);
  }
  // …and the same searchRuns counts.
  const counts = `{ all: searchRuns(workflow: "test_dag") { totalCount } completed: searchRuns(workflow: "test_dag", status: "COMPLETED") { totalCount }
    failed: searchRuns(workflow: "test_dag", status: "FAILED") { totalCount } viaGraphql: searchRuns(labels: { via: "graphql" }) { totalCount } }`;
  const [ca, cb] = await Promise.all([a.graphql(counts), b.graphql(counts)]);
  expect(ca.body).toEqual({ data: { all: { totalCount: RUNS }, completed: { totalCount: RUNS - RUNS / 50 }, failed: { totalCount: RUNS / 50 }, viaGraphql: { totalCount: RUNS / 2 } } });
  expect(cb.body).toEqual(ca.body);
  for (const p of [...workers, ...servers.map((s) => s.process)]) expect(p.child.exitCode).toBeNull();
}, 180_000);
