// The change hub on its own: one LISTEN per server however many subscribers, and a subscriber that
// stops reading is ended (its buffer freed) with the cursor to resume from, instead of growing.
import { describe, expect, test } from "vitest";
import { canonicalUuid, changeHubApplicationName, startChangeHub, type ChangesMessage } from "../../server/changes/changeHub.ts";
import { startRunSql, testLog, useTestDatabase, waitFor } from "../helpers.ts";

describe("change hub", () => {
  const db = useTestDatabase();

  test("many subscribers share one LISTEN connection", async () => {
    const hub = await startChangeHub({ pool: db.pool, connectionString: db.url, log: testLog, pollIntervalMs: 1000 });
    try {
      const subs = await Promise.all([1, 2, 3, 4, 5].map(() => hub.subscribe({ workflow: "test_single" })));
      const listeners = await db.pool.query(
        "select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = $1", [changeHubApplicationName]);
      expect(listeners.rows[0].n).toBe(1);
      const token = await startRunSql(db.pool, "test_single", {});
      for (const s of subs) {
        expect((await s.next()).value.runs).toBeDefined(); // the state
        const change = (await s.next()).value as ChangesMessage;
        expect(change.events.map((e) => [e.token, e.kind])).toContainEqual([token, "RUN_CREATED"]);
      }
      await Promise.all(subs.map((s) => s.return!()));
      expect(hub.subscriberCount()).toBe(0);
    } finally {
      await hub.close();
    }
  });

  test("a token in another spelling (uppercase, no hyphens, braces) follows the same run", async () => {
    const hub = await startChangeHub({ pool: db.pool, connectionString: db.url, log: testLog, pollIntervalMs: 20 });
    try {
      const token = await startRunSql(db.pool, "test_single", {});
      const spellings = [token.toUpperCase(), token.replaceAll("-", ""), `{${token}}`];
      expect(spellings.map(canonicalUuid)).toEqual([token, token, token]);
      const subs = await Promise.all(spellings.map((t) => hub.subscribe({ token: t })));
      for (const s of subs) expect(((await s.next()).value as ChangesMessage).runs).toHaveLength(1);
      await db.pool.query("select throughline.cancel_run($1, 'stopped by the test')", [token]);
      for (const s of subs) {
        const change = (await s.next()).value as ChangesMessage;
        expect(change.events.map((e) => [e.token, e.kind])).toContainEqual([token, "RUN_ENDED"]);
        await s.return!();
      }
    } finally {
      await hub.close();
    }
  });

  test("resuming with a backlog larger than the queue limit is not cut off: the catch-up is one message", async () => {
    const hub = await startChangeHub({ pool: db.pool, connectionString: db.url, log: testLog, pollIntervalMs: 20, maxQueuedMessages: 3 });
    try {
      const { rows: [{ c: from }] } = await db.pool.query("select throughline.current_cursor() as c");
      const tokens: string[] = [];
      for (let i = 0; i < 5; i++) tokens.push(await startRunSql(db.pool, "test_single", {}, { subject: "backlog" }));
      const sub = await hub.subscribe({ subject: "backlog", after: from });
      // A change arrives while the catch-up is still unread: it queues behind it, not into it.
      const more = await startRunSql(db.pool, "test_single", {}, { subject: "backlog" });
      await new Promise((r) => setTimeout(r, 300));
      const catchUp = (await sub.next()).value as ChangesMessage;
      expect(catchUp.events.filter((e) => e.kind === "RUN_CREATED").map((e) => e.token)).toEqual(tokens);
      const next = (await sub.next()).value as ChangesMessage;
      expect(next.events.map((e) => [e.token, e.kind])).toContainEqual([more, "RUN_CREATED"]);
      await sub.return!();
    } finally {
      await hub.close();
    }
  });

  test("a subscriber that stops reading is ended with the cursor to resume from, and misses nothing by resuming", async () => {
    const hub = await startChangeHub({ pool: db.pool, connectionString: db.url, log: testLog, pollIntervalMs: 1000, maxQueuedMessages: 3 });
    try {
      const sub = await hub.subscribe({ workflow: "test_dag" });
      const state = (await sub.next()).value as ChangesMessage;
      const tokens: string[] = [];
      for (let i = 0; i < 6; i++) {
        tokens.push(await startRunSql(db.pool, "test_dag", {}));
        await new Promise((r) => setTimeout(r, 30)); // one RUN_CREATED (and RUN_ADMITTED) change each
      }
      await waitFor(async () => hub.subscriberCount() === 0, { what: "the slow subscriber to be ended" });
      const error = await sub.next().then(() => undefined, (e: Error) => e);
      expect(error?.message).toMatch(/fell more than 3 changes behind and was ended; subscribe again with after: ".+" to continue without loss/);
      const resumeFrom = /after: "([^"]+)"/.exec(error!.message)![1];
      expect(resumeFrom).toBe(state.cursor); // it had read nothing after the state

      const again = await hub.subscribe({ workflow: "test_dag", after: resumeFrom });
      const caughtUp = (await again.next()).value as ChangesMessage;
      expect(new Set(caughtUp.events.filter((e) => e.kind === "RUN_CREATED").map((e) => e.token))).toEqual(new Set(tokens));
      await again.return!();
    } finally {
      await hub.close();
    }
  });
});
