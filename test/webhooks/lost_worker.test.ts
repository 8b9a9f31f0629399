// A worker process killed in the middle of a webhook delivery. Graphile Worker would keep that job,
// and with it the webhook's queue, locked for 4 hours; the lease sweep (release_lost_webhook_jobs)
// releases it once the attempt is presumed lost, and the delivery and those queued behind it go out.
import { afterAll, beforeAll, expect, test } from "vitest";
import { spawnThroughline, testWorkflowsModule } from "../processes.ts";
import { runEnded, startRunSql, startTestWorker, useTestDatabase, waitFor } from "../helpers.ts";
import type { ThroughlineWorker } from "../../src/runtime/worker.ts";
import { attemptsOf, createWebhook, deliveriesEnded, deliveriesOf, ok, startReceiver, type Receiver } from "./receiver.ts";

const db = useTestDatabase();
let receiver: Receiver;
let rescuer: ThroughlineWorker | undefined;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close(); // first: an open request would hold the worker's stop
  await rescuer?.stop();
});

const releaseLost = async () => (await db.pool.query("select throughline.release_lost_webhook_jobs() as n")).rows[0].n as number;
const queueLock = async (webhookId: string) => (await db.pool.query(
  "select locked_by from graphile_worker.jobs where queue_name = $1 and locked_by is not null", [`throughline_webhook:${webhookId}`])).rows;

test("a worker killed mid-delivery: the delivery is retried once its attempt is presumed lost, and the webhook's queue moves again", async () => {
  const subject = "lost-worker";
  let first = true;
  receiver.handle((req, res) => {
    if (first) {
      first = false; // the first request hangs: the worker is killed while waiting for the answer
      return;
    }
    ok(req, res);
  });
  const w = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject, timeoutSeconds: 30, maxAttempts: 3 });

  const doomed = spawnThroughline(["worker"], { DATABASE_URL: db.url, THROUGHLINE_WORKFLOWS: testWorkflowsModule, LOG_LEVEL: "warn" });
  await doomed.waitForOutput(/Throughline is ready/);
  const token = await startRunSql(db.pool, "test_single", {}, { subject });
  expect(await runEnded(db.pool, token)).toBe("COMPLETED");
  const [hanging] = await receiver.waitForRequests(1, (r) => r.json?.subject === subject);
  // A second run's delivery queues behind the hanging one (one delivery of a webhook at a time).
  const second = await startRunSql(db.pool, "test_single", {}, { subject });
  expect(await runEnded(db.pool, second)).toBe("COMPLETED");
  doomed.kill("SIGKILL");
  expect((await doomed.exited).signal).toBe("SIGKILL");
  const [lost, queued] = await deliveriesOf(db.pool, w.id);
  expect([lost.state, queued.state]).toEqual(["PENDING", "PENDING"]);
  expect(hanging.headers["x-throughline-delivery"]).toBe(lost.id);
  expect((await attemptsOf(db.pool, lost.id)).map((a) => a.outcome)).toEqual(["RUNNING"]);
  expect(await queueLock(w.id)).toHaveLength(1);

  // While the attempt's lease runs (its 30 s timeout plus a margin), the sweep leaves the lock alone:
  // for all it knows the worker is alive and waiting for the receiver.
  expect(await releaseLost()).toBe(0);
  expect(await queueLock(w.id)).toHaveLength(1);

  // The lease runs out (moved to the past instead of waiting a minute): the worker is presumed lost.
  await db.pool.query("update throughline.webhook_delivery set locked_until = now() - interval '1 second' where id = $1", [lost.id]);
  rescuer = await startTestWorker(db.pool, { THROUGHLINE_RECLAIM_INTERVAL_SECONDS: 0.2 });

  const deliveries = await deliveriesEnded(db.pool, w.id, 2, 20_000);
  expect(deliveries.map((d) => [d.token, d.state])).toEqual([[token, "DELIVERED"], [second, "DELIVERED"]]);
  const attempts = await attemptsOf(db.pool, lost.id);
  expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual([[1, "LOST"], [2, "DELIVERED"]]);
  expect(attempts[0].ended_at).not.toBeNull();
  // The receiver saw the same delivery twice (it deduplicates on the id), the second time as attempt 2.
  const sent = receiver.requests.filter((r) => r.headers["x-throughline-delivery"] === lost.id);
  expect(sent.map((r) => r.headers["x-throughline-attempt"])).toEqual(["1", "2"]);
  await waitFor(async () => (await queueLock(w.id)).length === 0, { what: "the webhook's queue to be unlocked" });
  expect(await releaseLost()).toBe(0); // nothing left to release
}, 60_000);
