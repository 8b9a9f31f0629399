// A connection lost while a step completes: whether Postgres ran the completion (and only the answer
// was lost) or never saw it, the step ends with exactly one transition and its result is not lost.
import { afterAll, beforeAll, expect, test } from "vitest";
import pg from "pg";
import { runEnded, startRunSql, startTestWorker, useTestDatabase } from "../helpers.ts";
import { startFaultProxy, type FaultProxy } from "./proxy.ts";
import type { ThroughlineWorker } from "../../src/runtime/worker.ts";

const db = useTestDatabase();
let proxy: FaultProxy;
let workerPool: pg.Pool;
let worker: ThroughlineWorker;

beforeAll(async () => {
  const url = new URL(db.url);
  proxy = await startFaultProxy({ host: url.hostname, port: Number(url.port) });
  url.port = String(proxy.port);
  workerPool = new pg.Pool({ connectionString: url.toString(), max: 10 });
  workerPool.on("error", () => {});
  workerPool.on("connect", (c) => c.on("error", () => {}));
  worker = await startTestWorker(workerPool, { THROUGHLINE_LEASE_SECONDS: 1, THROUGHLINE_RECLAIM_INTERVAL_SECONDS: 0.2 });
});
afterAll(async () => {
  await worker?.stop();
  await workerPool?.end();
  await proxy?.close();
});

async function transitions(token: string) {
  const { rows } = await db.pool.query(
    "select to_status from throughline.event where token = $1 and kind = 'STEP_STATUS' order by seq", [token]);
  return rows.map((r) => r.to_status);
}

test("Postgres completed the step but the answer was lost: one transition, nothing redone", async () => {
  const cut = proxy.cutOn("throughline/finish_step", "after");
  const token = await startRunSql(db.pool, "test_single", { steps: { ONLY: { sleepMs: 50 } } });
  await cut;
  expect(await runEnded(db.pool, token)).toBe("COMPLETED");
  expect(await transitions(token)).toEqual(["COMPLETED"]);
  const attempts = await db.pool.query("select a.attempt, a.outcome from throughline.step_attempt a join throughline.step s on s.id = a.step_id where s.token = $1", [token]);
  expect(attempts.rows).toEqual([{ attempt: 1, outcome: "COMPLETED" }]);
});

test("the completion never reached Postgres: the attempt’s lease runs out and the next attempt completes, once", async () => {
  const cut = proxy.cutOn("throughline/finish_step", "before");
  const token = await startRunSql(db.pool, "test_single", { steps: { ONLY: { sleepMs: 50 } } });
  await cut;
  expect(await runEnded(db.pool, token, 20_000)).toBe("COMPLETED");
  expect(await transitions(token)).toEqual(["COMPLETED"]);
  const attempts = await db.pool.query(
    "select a.attempt, a.outcome from throughline.step_attempt a join throughline.step s on s.id = a.step_id where s.token = $1 order by a.attempt", [token]);
  expect(attempts.rows).toEqual([{ attempt: 1, outcome: "LEASE_EXPIRED" }, { attempt: 2, outcome: "COMPLETED" }]);
});
