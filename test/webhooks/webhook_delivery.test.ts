// Webhook delivery end to end, with a real worker and a real HTTP receiver: persist first, then
// notify (anchors §2). Each test filters its webhook by its own subject, so tests sharing this file’s
// database do not hear each other’s runs.
import { createHmac, timingSafeEqual } from "node:crypto";
import net from "node:net";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runEnded, startRunSql, startTestWorker, stepsOf, useTestDatabase } from "../helpers.ts";
import type { ThroughlineWorker } from "../../src/runtime/worker.ts";
import { attemptsOf, createWebhook, deliveriesEnded, deliveriesOf, ok, startReceiver, type Receiver } from "./receiver.ts";

const db = useTestDatabase();
let worker: ThroughlineWorker;
let receiver: Receiver;
beforeAll(async () => {
  worker = await startTestWorker(db.pool);
  receiver = await startReceiver();
});
// Not useTestWorker: the receiver must close first, releasing the delivery a "hanging receiver"
// test left waiting, or stopping the worker would wait for it.
afterAll(async () => {
  await receiver?.close();
  await worker?.stop();
});

const forSubject = (subject: string) => (r: { json?: { subject?: string } }) => r.json?.subject === subject;

describe("webhook delivery", () => {
  test("the receiver hears of a run only after it is committed: a separate connection already sees it ended", async () => {
    const subject = "order";
    const seen: { event: string; runStatus: string; stepStatus?: string }[] = [];
    receiver.handle(async (req, res) => {
      if (req.json?.subject === subject) {
        // A connection of its own, opened when the request arrives: it sees only committed state.
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        try {
          const run = await client.query("select status from throughline.run where token = $1", [req.json.token]);
          const step = req.json.step
            ? await client.query("select status from throughline.step where id = $1", [req.json.step.id])
            : undefined;
          seen.push({ event: req.json.event, runStatus: run.rows[0]?.status, stepStatus: step?.rows[0]?.status });
        } finally {
          await client.end();
        }
      }
      ok(req, res);
    });
    const w = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED", "RUN_FAILED", "STEP_FAILED"], subject });

    const passing = await startRunSql(db.pool, "test_dag", {}, { subject });
    const failing = await startRunSql(db.pool, "test_single", { steps: { ONLY: { fail: "terminal" } } }, { subject });
    expect(await runEnded(db.pool, passing)).toBe("COMPLETED");
    expect(await runEnded(db.pool, failing)).toBe("FAILED");

    const deliveries = await deliveriesEnded(db.pool, w.id, 3);
    expect(deliveries.map((d) => [d.token, d.event, d.state]).sort()).toEqual([
      [passing, "RUN_COMPLETED", "DELIVERED"], [failing, "RUN_FAILED", "DELIVERED"], [failing, "STEP_FAILED", "DELIVERED"],
    ].sort());
    expect(seen.map((s) => s.event).sort()).toEqual(["RUN_COMPLETED", "RUN_FAILED", "STEP_FAILED"]);
    for (const s of seen) {
      if (s.event === "RUN_COMPLETED") expect(s.runStatus).toBe("COMPLETED");
      if (s.event === "RUN_FAILED") expect(s.runStatus).toBe("FAILED");
      // The step’s failure is committed; and its transaction also ended the run (one step), so the
      // document and the database agree on that too.
      if (s.event === "STEP_FAILED") expect([s.stepStatus, s.runStatus]).toEqual(["FAILED", "FAILED"]);
    }

    // The documents: event, run, failed steps with their reasons, epoch-ms timestamps.
    const runFailed = receiver.requests.find((r) => r.json?.token === failing && r.json.event === "RUN_FAILED")!;
    expect(runFailed.headers["content-type"]).toBe("application/json");
    expect(runFailed.headers["x-throughline-event"]).toBe("RUN_FAILED");
    expect(runFailed.json).toMatchObject({
      event: "RUN_FAILED", token: failing, workflow: "test_single", subject,
      run: { status: "FAILED", stepsTotal: 1, stepsFailed: 1 },
      failedSteps: [{ step: "ONLY", attempt: 1, failureReason: "ONLY failed on attempt 1 as the test asked" }],
      step: null,
    });
    expect(runFailed.json.deliveryId).toBe(runFailed.headers["x-throughline-delivery"]);
    expect(typeof runFailed.json.at).toBe("number");
    expect(runFailed.json.run.completedAt).toBeGreaterThanOrEqual(runFailed.json.run.createdAt);
    const stepFailed = receiver.requests.find((r) => r.json?.token === failing && r.json.event === "STEP_FAILED")!;
    expect(stepFailed.json.step).toMatchObject({ step: "ONLY", status: "FAILED", attempt: 1, failureReason: "ONLY failed on attempt 1 as the test asked" });
    const completed = receiver.requests.find((r) => r.json?.token === passing)!;
    expect(completed.json).toMatchObject({ event: "RUN_COMPLETED", workflow: "test_dag", run: { status: "COMPLETED", stepsTotal: 6, stepsFailed: 0 }, failedSteps: [] });
    receiver.handle(ok);
  });

  test("a failing receiver (500) never affects the run; each attempt is recorded, retried with backoff, then FAILED", async () => {
    const subject = "answers-500";
    receiver.handle((req, res) => {
      if (req.json?.subject === subject) res.writeHead(500, { "content-type": "text/plain" }).end("receiver is broken");
      else ok(req, res);
    });
    const w = await createWebhook(db.pool, {
      url: receiver.url, events: ["RUN_COMPLETED"], subject, maxAttempts: 3, backoffInitialSeconds: 0.1, backoffFactor: 2,
    });
    const token = await startRunSql(db.pool, "test_dag", {}, { subject });
    // The run completes normally, every step on its first attempt, whatever the receiver does.
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    const steps = await stepsOf(db.pool, token);
    for (const s of Object.values(steps)) expect([s.status, s.attempt]).toEqual(["COMPLETED", 1]);

    const [delivery] = await deliveriesEnded(db.pool, w.id, 1);
    expect(delivery).toMatchObject({ event: "RUN_COMPLETED", state: "FAILED", attempts: 3, last_status_code: 500, last_error: "receiver answered HTTP 500" });
    const attempts = await attemptsOf(db.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.outcome, a.status_code, a.error])).toEqual([
      [1, "FAILED", 500, "receiver answered HTTP 500"],
      [2, "FAILED", 500, "receiver answered HTTP 500"],
      [3, "FAILED", 500, "receiver answered HTTP 500"],
    ]);
    // Backoff: 100 ms, then 200 ms (up to +10 % jitter), and no attempt began before its time.
    for (const [i, base] of [[0, 100], [1, 200]] as const) {
      const gap = attempts[i].retry_at!.getTime() - attempts[i].ended_at!.getTime();
      expect(gap).toBeGreaterThanOrEqual(base - 1);
      expect(gap).toBeLessThanOrEqual(base * 1.1 + 2);
      expect(attempts[i + 1].started_at.getTime()).toBeGreaterThanOrEqual(attempts[i].retry_at!.getTime());
    }
    expect(attempts[2].retry_at).toBeNull();
    for (const a of attempts) expect(a.duration_ms).toBeGreaterThanOrEqual(0);

    // The receiver saw the same delivery three times, numbered.
    const got = receiver.requests.filter(forSubject(subject));
    expect(got.map((r) => r.headers["x-throughline-attempt"])).toEqual(["1", "2", "3"]);
    expect(new Set(got.map((r) => r.headers["x-throughline-delivery"]))).toEqual(new Set([delivery.id]));
    // And the run is exactly as it was.
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    receiver.handle(ok);
  });

  test("a hanging receiver times out, is recorded, and blocks neither the run nor other runs", async () => {
    const subject = "hangs";
    receiver.handle((req, res) => {
      if (req.json?.subject !== subject) ok(req, res);
      // else: never answer
    });
    const w = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject, timeoutSeconds: 1.5, maxAttempts: 2, backoffInitialSeconds: 0.05 });
    const token = await startRunSql(db.pool, "test_single", {}, { subject });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    await receiver.waitForRequests(1, forSubject(subject));
    expect(receiver.open()).toBeGreaterThan(0);

    // While the delivery hangs, other runs start and finish.
    const others = await Promise.all([1, 2, 3].map(() => startRunSql(db.pool, "test_dag", {}, { subject: "meanwhile" })));
    for (const t of others) expect(await runEnded(db.pool, t)).toBe("COMPLETED");
    const finished = await db.pool.query("select max(completed_at) as at from throughline.run where token = any ($1::uuid[])", [others]);

    const [delivery] = await deliveriesEnded(db.pool, w.id, 1);
    expect(delivery).toMatchObject({ state: "FAILED", attempts: 2, last_status_code: null, last_error: "timed out after 1500 ms" });
    const attempts = await attemptsOf(db.pool, delivery.id);
    expect(attempts.map((a) => [a.outcome, a.error])).toEqual([["FAILED", "timed out after 1500 ms"], ["FAILED", "timed out after 1500 ms"]]);
    for (const a of attempts) expect(a.duration_ms).toBeGreaterThanOrEqual(1400);
    // The other runs completed while the first attempt was still hanging.
    expect(finished.rows[0].at.getTime()).toBeLessThan(attempts[0].ended_at!.getTime());
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    receiver.handle(ok);
  });

  test("a receiver that answers garbage is a recorded failure; a 2xx with any body is delivered", async () => {
    // Not HTTP at all: a raw socket that writes nonsense and hangs up.
    const garbage = net.createServer((socket) => {
      socket.once("data", () => socket.end("SPLAT \u0000\u0001 not http\r\n\r\n"));
    });
    await new Promise<void>((resolve) => garbage.listen(0, "127.0.0.1", resolve));
    try {
      const subject = "garbage";
      const url = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}/hook`;
      const bad = await createWebhook(db.pool, { url, events: ["RUN_COMPLETED"], subject, maxAttempts: 1 });
      const good = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject });
      receiver.handle((req, res) => {
        res.writeHead(202, { "content-type": "application/json" }).end("{not json at all \u0000");
      });
      const token = await startRunSql(db.pool, "test_single", {}, { subject });
      expect(await runEnded(db.pool, token)).toBe("COMPLETED");
      const [failed] = await deliveriesEnded(db.pool, bad.id, 1);
      expect(failed.state).toBe("FAILED");
      expect(failed.last_status_code).toBeNull();
      expect(failed.last_error).toBeTruthy();
      const [delivered] = await deliveriesEnded(db.pool, good.id, 1);
      expect(delivered).toMatchObject({ state: "DELIVERED", attempts: 1, last_status_code: 202 });
      const excerpt = await db.pool.query("select response_excerpt from throughline.webhook_delivery_attempt where delivery_id = $1", [delivered.id]);
      expect(excerpt.rows[0].response_excerpt).toContain("{not json at all");
    } finally {
      garbage.close();
      receiver.handle(ok);
    }
  });

  test("the signature is the HMAC-SHA256 of the exact body with the webhook’s secret", async () => {
    const subject = "signed";
    const secret = "s3cret-for-the-signature-test";
    const given = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject, secret });
    const generated = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject });
    const token = await startRunSql(db.pool, "test_single", {}, { subject });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    await deliveriesEnded(db.pool, given.id, 1);
    await deliveriesEnded(db.pool, generated.id, 1);
    const [fromGiven] = await deliveriesOf(db.pool, given.id);
    const [fromGenerated] = await deliveriesOf(db.pool, generated.id);
    const requests = await receiver.waitForRequests(2, forSubject(subject));
    for (const [delivery, key] of [[fromGiven, secret], [fromGenerated, generated.secret]] as const) {
      const req = requests.find((r) => r.headers["x-throughline-delivery"] === delivery.id)!;
      const expected = `sha256=${createHmac("sha256", key).update(req.body).digest("hex")}`;
      const header = String(req.headers["x-throughline-signature"]);
      expect(header).toBe(expected);
      expect(timingSafeEqual(Buffer.from(header), Buffer.from(expected))).toBe(true);
      // The other webhook’s secret does not verify it.
      const wrong = createHmac("sha256", key === secret ? generated.secret : secret).update(req.body).digest("hex");
      expect(header).not.toBe(`sha256=${wrong}`);
      expect(req.json.token).toBe(token);
    }
  });

  test("a rolled-back transaction produces no delivery, and no job; the next committed one does", async () => {
    const subject = "rollback";
    const w = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_CANCELLED", "RUN_FAILED", "STEP_FAILED"], subject });
    const client = await db.pool.connect();
    let rolledBack: string;
    try {
      await client.query("begin");
      rolledBack = await startRunSql(client, "test_single", { steps: { ONLY: { sleepMs: 60_000 } } }, { subject });
      await client.query("select throughline.cancel_run($1)", [rolledBack]);
      // Fire the deferred outbox trigger now, to see that the delivery and its job were written…
      await client.query("set constraints all immediate");
      expect((await client.query("select count(*)::int as n from throughline.webhook_delivery where token = $1", [rolledBack])).rows[0].n).toBe(1);
      await client.query("rollback");
    } finally {
      client.release();
    }
    // …and are gone with the transaction.
    expect(await deliveriesOf(db.pool, w.id)).toEqual([]);
    const jobs = await db.pool.query("select count(*)::int as n from graphile_worker.jobs where queue_name = $1", [`throughline_webhook:${w.id}`]);
    expect(jobs.rows[0].n).toBe(0);

    // A committed cancellation of another run is delivered: by then, a delivery for the rolled-back
    // one would have arrived too, had there been one.
    const committed = await startRunSql(db.pool, "test_single", { steps: { ONLY: { sleepMs: 60_000 } } }, { subject });
    await db.pool.query("select throughline.cancel_run($1)", [committed]);
    const [delivered] = await deliveriesEnded(db.pool, w.id, 1);
    expect(delivered).toMatchObject({ token: committed, event: "RUN_CANCELLED", state: "DELIVERED" });
    const got = await receiver.waitForRequests(1, forSubject(subject));
    expect(got.map((r) => r.json.token)).toEqual([committed]);
    expect(receiver.requests.some((r) => r.json?.token === rolledBack!)).toBe(false);
  });

  test("disabled webhooks and non-matching filters get nothing", async () => {
    const subject = "filters";
    const disabled = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject });
    await db.pool.query("select throughline.set_webhook_enabled($1, false)", [disabled.id]);
    const otherWorkflow = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject, workflow: "test_dag" });
    const otherEvent = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_FAILED"], subject });
    const matching = await createWebhook(db.pool, { url: receiver.url, events: ["RUN_COMPLETED"], subject, workflow: "test_single" });
    const token = await startRunSql(db.pool, "test_single", {}, { subject });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    await deliveriesEnded(db.pool, matching.id, 1);
    for (const w of [disabled, otherWorkflow, otherEvent]) expect(await deliveriesOf(db.pool, w.id)).toEqual([]);
  });
});
