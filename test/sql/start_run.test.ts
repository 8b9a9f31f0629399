// Submitting runs: idempotency, concurrent duplicates, and bad input that must write nothing.
import { describe, expect, test } from "vitest";
import pg from "pg";
import { randomUUID } from "node:crypto";
import { servers, useTestDatabase } from "../helpers.ts";
import { startRun } from "../../src/db/runs.ts";
import { ThroughlineError } from "../../src/db/errors.ts";

describe.each(servers())("$name", (server) => {
  const db = useTestDatabase(() => server);

  const counts = async () => {
    const { rows } = await db.pool.query(
      "select (select count(*) from throughline.run)::int as runs, (select count(*) from throughline.step)::int as steps, (select count(*) from throughline.event)::int as events");
    return rows[0];
  };

  test("starting a run with a token that exists returns that run and creates nothing", async () => {
    const token = randomUUID();
    const first = await startRun(db.pool, { workflow: "test_dag", input: { a: 1 }, token });
    const before = await counts();
    const again = await startRun(db.pool, { workflow: "test_dag", input: { a: 1 }, token });
    expect(again.token).toBe(first.token);
    expect(again.created_at).toBe(first.created_at);
    expect(await counts()).toEqual(before);
  });

  test("a token reused for a different submission is refused", async () => {
    const token = randomUUID();
    await startRun(db.pool, { workflow: "test_dag", input: { a: 1 }, token });
    const error = await startRun(db.pool, { workflow: "test_dag", input: { a: 2 }, token }).catch((e) => e);
    expect(error).toBeInstanceOf(ThroughlineError);
    expect(error).toMatchObject({ kind: "conflict", code: "TL409" });
    expect(error.message).toBe(`token ${token} was already used for a different submission`);
  });

  test("concurrent submissions of one token make exactly one run", async () => {
    const token = randomUUID();
    const clients = await Promise.all(Array.from({ length: 8 }, async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      return c;
    }));
    try {
      // Each submission holds its transaction open a moment so they truly overlap.
      const results = await Promise.all(clients.map(async (c) => {
        await c.query("begin");
        const run = await startRun(c, { workflow: "test_dag", input: { same: true }, token });
        await c.query("select pg_sleep(0.05)");
        await c.query("commit");
        return run.token;
      }));
      expect(new Set(results)).toEqual(new Set([token]));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    const { rows } = await db.pool.query("select count(*)::int as runs, (select count(*)::int from throughline.step where token = $1) as steps from throughline.run where token = $1", [token]);
    expect(rows[0]).toEqual({ runs: 1, steps: 6 });
    const jobs = await db.pool.query("select count(*)::int as n from graphile_worker._private_jobs where (payload->>'stepId')::bigint in (select id from throughline.step where token = $1)", [token]);
    expect(jobs.rows[0].n).toBe(1); // one root job, not eight
  });

  test.each([
    ["an unknown workflow", { workflow: "no_such_flow", input: {} }, "TL404", /^unknown workflow "no_such_flow"$/],
    ["input that is not an object", { workflow: "test_dag", input: [1, 2] as unknown as Record<string, unknown> }, "TL422", /^run input must be a JSON object, got array$/],
    ["labels that are not an object", { workflow: "test_dag", input: {}, labels: "x" as unknown as Record<string, string> }, "TL422", /^labels must be a JSON object$/],
    ["an oversized input", { workflow: "test_dag", input: { blob: "x".repeat(1024 * 1024) } }, "TL413", /^run input is 1048\d+ bytes, more than the 1048576 bytes workflow "test_dag" accepts$/],
    ["a subject too long", { workflow: "test_dag", input: {}, subject: "s".repeat(300) }, "TL422", /^subject must be 1 to 256 characters$/],
  ])("%s is refused with a clear error and nothing is written", async (_, args, code, message) => {
    const before = await counts();
    const error = await startRun(db.pool, args).catch((e) => e);
    expect(error).toBeInstanceOf(ThroughlineError);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(await counts()).toEqual(before);
  });

  test("an unknown workflow error lists the workflows there are", async () => {
    const error = await startRun(db.pool, { workflow: "bom_uplaod", input: {} }).catch((e) => e);
    expect(error.hint).toBe("Registered workflows: bom_upload, reanalysis, test_dag, test_single");
  });

  test("is_processing is false for an unknown token, as hyades answers", async () => {
    const { rows } = await db.pool.query("select throughline.is_processing($1) as p", [randomUUID()]);
    expect(rows[0].p).toBe(false);
  });

  test("a malformed token is an invalid-input error, not a server error", async () => {
    const error = await db.pool.query("select throughline.is_processing($1)", ["not-a-uuid"]).catch((e) => e);
    expect(error.code).toBe("22P02");
  });

  test("the subject comes from the input field the workflow names", async () => {
    const run = await startRun(db.pool, { workflow: "reanalysis", input: { project: "p-42" } });
    expect(run.subject).toBe("p-42");
  });
});
