// Access control in Postgres: roles, API keys and row-level security, tried from plain SQL exactly
// as the server applies them (SET ROLE + the key’s settings, per transaction).
import { describe, expect, test } from "vitest";
import type pg from "pg";
import { servers, startRunSql, useTestDatabase, withTx } from "../helpers.ts";

type Role = "reader" | "submitter" | "admin";

/** Runs the rest of the transaction as an API key would: its role and its subjects. */
async function actAs(c: pg.PoolClient, role: Role, subjects: string[] | null) {
  await c.query("select set_config('role', $1, true), set_config('throughline.key_subjects', $2, true)",
    [`throughline_${role}`, subjects ? `{${subjects.map((s) => `"${s}"`).join(",")}}` : ""]);
}

async function sqlError(c: pg.PoolClient, sql: string, params: unknown[] = []) {
  await c.query("savepoint s");
  const e = await c.query(sql, params).then(() => undefined, (err) => err);
  await c.query("rollback to savepoint s");
  return e;
}

describe.each(servers())("$name", (server) => {
  const db = useTestDatabase(() => server);

  test("an API key authenticates until it is revoked or expires; only its hash is stored", async () => {
    await withTx(db.pool, async (c) => {
      const { rows: [k] } = await c.query("select * from throughline.create_api_key('ci', 'submitter', array['p1'])");
      expect(k.api_key).toMatch(/^tl_[0-9a-f]{64}$/);
      const auth = async (key: string) => (await c.query("select * from throughline.authenticate_api_key($1)", [key])).rows;
      expect(await auth(k.api_key)).toEqual([{ key_id: k.id, role: "submitter", subjects: ["p1"] }]);
      expect(await auth(k.api_key + "x")).toEqual([]);
      const stored = await c.query("select key_hash, key_prefix from throughline.api_key where id = $1", [k.id]);
      expect(stored.rows[0].key_hash).not.toContain(k.api_key.slice(3));
      expect(stored.rows[0].key_prefix).toBe(k.api_key.slice(0, 10));
      await c.query("select throughline.revoke_api_key($1)", [k.id]);
      expect(await auth(k.api_key)).toEqual([]);
      const { rows: [old] } = await c.query("select * from throughline.create_api_key('old', 'reader', null, now() - interval '1 second')");
      expect(await auth(old.api_key)).toEqual([]);
      const bad = await sqlError(c, "select * from throughline.create_api_key('x', 'root')");
      expect(bad).toMatchObject({ code: "TL422", message: "role must be reader, submitter or admin, got root" });
    });
  });

  test("a key scoped to one project sees that project’s runs only, through every table and the hyades view", async () => {
    await withTx(db.pool, async (c) => {
      const mine = await startRunSql(c, "reanalysis", { project: "p1" });
      const theirs = await startRunSql(c, "reanalysis", { project: "p2" });
      await actAs(c, "reader", ["p1"]);
      const visible = async (sql: string) => (await c.query(sql, [[mine, theirs]])).rows.map((r) => r.token);
      expect(await visible("select token from throughline.run where token = any($1)")).toEqual([mine]);
      expect(new Set(await visible("select token from throughline.step where token = any($1)"))).toEqual(new Set([mine]));
      expect(new Set(await visible("select token from throughline.workflow_state where token = any($1)"))).toEqual(new Set([mine]));
      expect(new Set(await visible("select token from throughline.event where token = any($1)"))).toEqual(new Set([mine]));
      // is_processing answers as for an unknown token: nothing leaks about other projects
      expect((await c.query("select throughline.is_processing($1) as p", [theirs])).rows[0].p).toBe(false);
      expect((await c.query("select throughline.is_processing($1) as p", [mine])).rows[0].p).toBe(true);
      const events = await c.query("select events from throughline.events_after($1)", ["1:1:"]);
      expect(new Set(events.rows[0].events.map((e: { token: string }) => e.token))).toEqual(new Set([mine]));
    });
  });

  test("an unscoped reader sees every project but cannot change anything", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "reanalysis", { project: "p9" });
      await actAs(c, "reader", null);
      expect((await c.query("select count(*)::int as n from throughline.run where token = $1", [token])).rows[0].n).toBe(1);
      expect(await sqlError(c, "select throughline.start_run('reanalysis', '{\"project\": \"p9\"}')")).toMatchObject({ code: "42501" });
      expect(await sqlError(c, "select throughline.cancel_run($1)", [token])).toMatchObject({ code: "42501" });
      expect(await sqlError(c, "update throughline.step set status = 'CANCELLED' where token = $1", [token])).toMatchObject({ code: "42501" });
      expect(await sqlError(c, "delete from throughline.run where token = $1", [token])).toMatchObject({ code: "42501" });
      expect(await sqlError(c, "select * from throughline.api_key")).toMatchObject({ code: "42501" });
    });
  });

  test("a scoped submitter starts and cancels runs of its project only", async () => {
    await withTx(db.pool, async (c) => {
      const theirs = await startRunSql(c, "reanalysis", { project: "p2" });
      await actAs(c, "submitter", ["p1"]);
      const started = await c.query("select token, subject from throughline.start_run('reanalysis', '{\"project\": \"p1\"}')");
      expect(started.rows[0].subject).toBe("p1");
      expect(await sqlError(c, "select throughline.start_run('reanalysis', '{\"project\": \"p2\"}')"))
        .toMatchObject({ code: "TL403", message: "this API key may not start runs for subject p2" });
      expect(await sqlError(c, "select throughline.cancel_run($1)", [theirs]))
        .toMatchObject({ code: "TL404", message: `Provided token ${theirs} does not exist.` });
      const cancelled = await c.query("select status from throughline.cancel_run($1)", [started.rows[0].token]);
      expect(cancelled.rows[0].status).toBe("CANCELLED");
      expect(await sqlError(c, "select throughline.retry_step(id) from throughline.step where token = $1 limit 1", [started.rows[0].token]))
        .toMatchObject({ code: "42501" });
    });
  });

  test("an admin retries steps and manages keys; a scoped admin cannot mint keys for other projects", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "reanalysis", { project: "p1" });
      await c.query("select throughline.cancel_run($1)", [token]);
      await actAs(c, "admin", ["p1"]);
      const stepId = (await c.query("select id from throughline.step where token = $1 and step = 'VULN_ANALYSIS'", [token])).rows[0].id;
      const run = await c.query("select status from throughline.retry_step($1)", [stepId]);
      expect(run.rows[0].status).toBe("PENDING");
      const listed = await c.query("select name, role from throughline.api_key");
      expect(listed.fields.map((f) => f.name)).toEqual(["name", "role"]);
      expect(await sqlError(c, "select key_hash from throughline.api_key")).toMatchObject({ code: "42501" });
      expect(await sqlError(c, "select * from throughline.create_api_key('wide', 'reader')"))
        .toMatchObject({ code: "TL403" });
      expect((await c.query("select * from throughline.create_api_key('narrow', 'reader', array['p1'])")).rowCount).toBe(1);
    });
  });

  test("webhooks are an admin's: a reader cannot make one, a scoped admin only for its subjects, and secrets stay hidden", async () => {
    await withTx(db.pool, async (c) => {
      await c.query("savepoint before");
      await actAs(c, "reader", null);
      expect(await sqlError(c, "select throughline.create_webhook('https://example.test/hook', array['RUN_FAILED'])")).toMatchObject({ code: "42501" });
      await c.query("rollback to savepoint before");
      await actAs(c, "admin", ["p1"]);
      expect(await sqlError(c, "select throughline.create_webhook('https://example.test/hook', array['RUN_FAILED'])")).toMatchObject({ code: "TL403" });
      const made = await c.query("select id, secret from throughline.create_webhook('https://example.test/hook', array['RUN_FAILED'], subject => 'p1')");
      expect(made.rows[0].secret.length).toBeGreaterThanOrEqual(16); // shown to its creator once
      expect((await c.query("select url from throughline.webhook")).rows).toEqual([{ url: "https://example.test/hook" }]);
      expect(await sqlError(c, "select secret from throughline.webhook")).toMatchObject({ code: "42501" });
    });
  });
});
