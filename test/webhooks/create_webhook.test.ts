// throughline.create_webhook / delete_webhook / set_webhook_enabled: what is refused (TL422, nothing
// written) and what is accepted. No worker needed.
import { describe, expect, test } from "vitest";
import type { DatabaseError } from "pg";
import { useTestDatabase } from "../helpers.ts";
import { createWebhook } from "./receiver.ts";

const db = useTestDatabase();

async function refusal(p: Promise<unknown>): Promise<DatabaseError> {
  const e = await p.then(() => undefined, (err: DatabaseError) => err);
  if (!e) throw new Error("expected the call to be refused");
  return e;
}

const countWebhooks = async () => Number((await db.pool.query("select count(*) from throughline.webhook")).rows[0].count);

describe("create_webhook", () => {
  test.each([
    ["ftp://example.com/hook", /absolute http:\/\/ or https:\/\/ URL/],
    ["example.com/hook", /absolute http:\/\/ or https:\/\/ URL/],
    ["http://", /absolute http:\/\/ or https:\/\/ URL/],
    ["https://exa mple.com/hook", /without spaces/],
    ["javascript:alert(1)", /got "javascript:alert\(1\)"/],
  ])("refuses the URL %s with TL422 and writes nothing", async (url, message) => {
    const before = await countWebhooks();
    const e = await refusal(createWebhook(db.pool, { url, events: ["RUN_COMPLETED"] }));
    expect(e.code).toBe("TL422");
    expect(e.message).toMatch(message);
    expect(await countWebhooks()).toBe(before);
  });

  test("refuses a NULL URL", async () => {
    const e = await refusal(db.pool.query("select throughline.create_webhook(null, array['RUN_FAILED'])"));
    expect(e.code).toBe("TL422");
    expect(e.message).toContain("got NULL");
  });

  test("refuses unknown events, naming them and the known ones, and writes nothing", async () => {
    const before = await countWebhooks();
    const e = await refusal(createWebhook(db.pool, { url: "https://ci.example.com/hook", events: ["RUN_COMPLETED", "RUN_EXPLODED", "step_failed"] }));
    expect(e.code).toBe("TL422");
    expect(e.message).toBe('unknown webhook event "RUN_EXPLODED", "step_failed"; expected any of RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED, STEP_FAILED');
    expect(await countWebhooks()).toBe(before);
  });

  test("refuses an empty event list", async () => {
    const e = await refusal(createWebhook(db.pool, { url: "https://ci.example.com/hook", events: [] }));
    expect(e.code).toBe("TL422");
    expect(e.message).toMatch(/at least one of RUN_COMPLETED/);
  });

  test("refuses an unknown workflow filter, a short secret and out-of-range policies", async () => {
    const url = "https://ci.example.com/hook";
    const cases: [Parameters<typeof createWebhook>[1], RegExp][] = [
      [{ url, events: ["RUN_FAILED"], workflow: "no_such_workflow" }, /unknown workflow "no_such_workflow"/],
      [{ url, events: ["RUN_FAILED"], secret: "short" }, /secret must be at least 16 characters/],
      [{ url, events: ["RUN_FAILED"], timeoutSeconds: 0 }, /timeout must be more than 0/],
      [{ url, events: ["RUN_FAILED"], timeoutSeconds: 301 }, /at most 5 minutes/],
      [{ url, events: ["RUN_FAILED"], maxAttempts: 0 }, /max_attempts must be between 1 and 100/],
      [{ url, events: ["RUN_FAILED"], backoffFactor: 0.5 }, /backoff_factor >= 1/],
    ];
    const before = await countWebhooks();
    for (const [spec, message] of cases) {
      const e = await refusal(createWebhook(db.pool, spec));
      expect(e.code).toBe("TL422");
      expect(e.message).toMatch(message);
    }
    expect(await countWebhooks()).toBe(before);
  });

  test("the table refuses what the function would, for writers that bypass it", async () => {
    const e = await refusal(db.pool.query("insert into throughline.webhook (url, events, secret) values ('file:///etc/passwd', array['RUN_FAILED'], repeat('x', 16))"));
    expect(e.code).toBe("23514");
    const e2 = await refusal(db.pool.query("insert into throughline.webhook (url, events, secret) values ('https://x.example', array['NOPE'], repeat('x', 16))"));
    expect(e2.code).toBe("23514");
  });

  test("accepts a valid webhook: events deduplicated and sorted, a strong secret generated when none is given", async () => {
    const w = await createWebhook(db.pool, { url: "https://ci.example.com/hooks?x=1", events: ["STEP_FAILED", "RUN_FAILED", "STEP_FAILED"], workflow: "test_dag" });
    expect(w.events).toEqual(["RUN_FAILED", "STEP_FAILED"]);
    expect(w.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(w.enabled).toBe(true);
    const given = await createWebhook(db.pool, { url: "http://127.0.0.1:9/x", events: ["RUN_COMPLETED"], secret: "a-secret-of-enough-length" });
    expect(given.secret).toBe("a-secret-of-enough-length");
  });

  test("set_webhook_enabled toggles and refuses an unknown id; delete_webhook says whether it deleted", async () => {
    const w = await createWebhook(db.pool, { url: "https://ci.example.com/h", events: ["RUN_COMPLETED"] });
    expect((await db.pool.query("select enabled from throughline.set_webhook_enabled($1, false)", [w.id])).rows[0].enabled).toBe(false);
    const e = await refusal(db.pool.query("select throughline.set_webhook_enabled(-1, true)"));
    expect(e.code).toBe("TL404");
    expect((await db.pool.query("select throughline.delete_webhook($1) as d", [w.id])).rows[0].d).toBe(true);
    expect((await db.pool.query("select throughline.delete_webhook($1) as d", [w.id])).rows[0].d).toBe(false);
  });
});

describe("resume_webhook_deliveries", () => {
  test("rings again for a PENDING delivery that lost its job, and only for that one", async () => {
    const w = await createWebhook(db.pool, { url: "http://127.0.0.1:9/nowhere", events: ["RUN_CANCELLED"], subject: "lost-doorbell" });
    const token = (await db.pool.query("select token from throughline.start_run('test_single', '{}'::jsonb, 'lost-doorbell')")).rows[0].token;
    await db.pool.query("select throughline.cancel_run($1)", [token]);
    const queue = `throughline_webhook:${w.id}`;
    const jobs = async () => Number((await db.pool.query("select count(*) from graphile_worker.jobs where queue_name = $1", [queue])).rows[0].count);
    // No worker runs in this file: the outbox’s job is waiting, so nothing is stale yet.
    expect(await jobs()).toBe(1);
    expect((await db.pool.query("select throughline.resume_webhook_deliveries(interval '0') as n")).rows[0].n).toBe(0);
    // Lose the doorbell (as if a worker claimed it and died before recording), and age the delivery.
    await db.pool.query("select graphile_worker.complete_jobs(array(select id from graphile_worker.jobs where queue_name = $1))", [queue]);
    expect(await jobs()).toBe(0);
    await db.pool.query("update throughline.webhook_delivery set next_attempt_at = now() - interval '10 minutes' where webhook_id = $1", [w.id]);
    expect((await db.pool.query("select throughline.resume_webhook_deliveries() as n")).rows[0].n).toBe(1);
    expect(await jobs()).toBe(1);
    // Rung once: a second sweep sees the job and does nothing.
    expect((await db.pool.query("select throughline.resume_webhook_deliveries() as n")).rows[0].n).toBe(0);
  });
});
