// Maintenance, with hyades’ own cases (timeouts, retention) and the corrections we made to them.
// The functions take the point in time they work to, so "an hour later" needs no waiting.
import { describe, expect, test } from "vitest";
import type pg from "pg";
import { servers, startRunSql, startTestWorker, stepsOf, useTestDatabase, waitFor, withTx } from "../helpers.ts";

const later = (minutes: number) => `now() + interval '${minutes} minutes'`;

async function timeOut(c: pg.PoolClient, atMinutes: number): Promise<number> {
  return (await c.query(`select throughline.time_out_steps(${later(atMinutes)}) as n`)).rows[0].n;
}

describe.each(servers())("$name", (server) => {
  const db = useTestDatabase(() => server);

  test("a runnable PENDING step without progress becomes TIMED_OUT; its children are untouched", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      expect(await timeOut(c, 59)).toBe(0); // not yet (timeout 60 min)
      expect(await timeOut(c, 61)).toBe(1);
      const steps = await stepsOf(c, token);
      expect(steps.BOM_CONSUMPTION.status).toBe("TIMED_OUT");
      for (const name of ["BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]) {
        expect(steps[name].status).toBe("PENDING");
      }
      expect((await c.query("select throughline.is_processing($1) as p", [token])).rows[0].p).toBe(true);
    });
  });

  test("TIMED_OUT without progress for another period FAILS with “Timed out” and cancels downstream, all with one updated_at", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await timeOut(c, 61);
      // updated_at of the TIMED_OUT step is now(): another full period has to pass after it
      expect(await timeOut(c, 59)).toBe(0);
      expect(await timeOut(c, 61)).toBe(1);
      const steps = await stepsOf(c, token);
      expect(steps.BOM_CONSUMPTION).toMatchObject({ status: "FAILED", failure_reason: "Timed out" });
      const at = steps.BOM_CONSUMPTION.updated_at.getTime();
      for (const name of ["BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]) {
        expect(steps[name].status).toBe("CANCELLED");
        expect(steps[name].updated_at.getTime()).toBe(at);
      }
    });
  });

  test("a step that is still heartbeating is not timed out", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      const { rows } = await c.query("select id from throughline.step where token = $1", [token]);
      await c.query("select throughline.begin_step($1, 1, 'w', interval '2 hours')", [rows[0].id]);
      // a heartbeat 50 minutes from now: progress, so at +100 min it is 50 min old, not 60
      await c.query(`update throughline.step set heartbeat_at = ${later(50)} where id = $1`, [rows[0].id]);
      expect(await timeOut(c, 100)).toBe(0);
      expect(await timeOut(c, 111)).toBe(1);
    });
  });

  test("a step that is not runnable yet never times out, however slow the step before it", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      const { rows } = await c.query("select id from throughline.step where token = $1 and step = 'BOM_CONSUMPTION'", [token]);
      await c.query("select throughline.begin_step($1, 1, 'w', interval '10 hours')", [rows[0].id]);
      await c.query(`update throughline.step set heartbeat_at = ${later(170)} where id = $1`, [rows[0].id]);
      expect(await timeOut(c, 180)).toBe(0); // the root heartbeats; its children wait, untouched
      const steps = await stepsOf(c, token);
      expect(Object.values(steps).every((s) => s.status === "PENDING")).toBe(true);
    });
  });

  test("a TIMED_OUT step may still complete", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      const { rows } = await c.query("select id from throughline.step where token = $1", [token]);
      await c.query("select throughline.begin_step($1, 1, 'w')", [rows[0].id]);
      await timeOut(c, 61);
      expect((await stepsOf(c, token)).ONLY.status).toBe("TIMED_OUT");
      expect((await c.query("select throughline.complete_step($1, 1, '{}') as ok", [rows[0].id])).rows[0].ok).toBe(true);
      expect((await c.query("select status from throughline.run where token = $1", [token])).rows[0].status).toBe("COMPLETED");
    });
  });

  test("an expired lease gives the step its next attempt; the dead attempt can no longer write", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      const { rows } = await c.query("select id from throughline.step where token = $1", [token]);
      const id = rows[0].id;
      await c.query("select throughline.begin_step($1, 1, 'dead-worker', interval '30 seconds')", [id]);
      expect((await c.query("select throughline.reclaim_expired_leases(now() + interval '29 seconds') as n")).rows[0].n).toBe(0);
      expect((await c.query("select throughline.reclaim_expired_leases(now() + interval '31 seconds') as n")).rows[0].n).toBe(1);
      expect((await c.query("select throughline.complete_step($1, 1, '{\"zombie\": true}') as ok", [id])).rows[0].ok).toBe(false);
      expect((await c.query("select throughline.heartbeat_steps('dead-worker', array[$1::bigint], array[1], interval '30 seconds') as held", [id])).rows[0].held).toEqual([]);
      const step = (await stepsOf(c, token)).ONLY;
      expect(step).toMatchObject({ status: "PENDING", attempt: 2 });
      const history = await c.query("select attempt, outcome, error from throughline.step_attempt where step_id = $1", [id]);
      expect(history.rows[0]).toMatchObject({ attempt: 1, outcome: "LEASE_EXPIRED" });
      expect(history.rows[0].error).toMatch(/dead-worker stopped heartbeating/);
    });
  });

  test("a ready step whose job was lost is enqueued again; one whose job is alive is left alone", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      const { rows: [s] } = await c.query("select id, attempt from throughline.step where token = $1", [token]);
      const key = `throughline:step:${s.id}:${s.attempt}`;
      const liveJobs = () => c.query("select count(*)::int as n from graphile_worker.jobs where key = $1 and locked_at is null", [key]).then((r) => r.rows[0].n);
      const reclaim = (at: string) => c.query(`select throughline.reclaim_expired_leases(${at}, 100, interval '30 seconds') as n`).then((r) => r.rows[0].n);
      expect(await liveJobs()).toBe(1);
      expect(await reclaim("now() + interval '1 hour'")).toBe(0); // its job waits, unlocked: nothing lost
      // A worker took the job and died before begin_step (test-only: Graphile Worker's private table).
      await c.query("update graphile_worker._private_jobs set locked_at = now(), locked_by = 'dead' where key = $1", [key]);
      expect(await reclaim("now() + interval '29 seconds'")).toBe(0); // not yet lost
      expect(await reclaim("now() + interval '31 seconds'")).toBe(1);
      expect(await liveJobs()).toBe(1); // rung again, same attempt
      expect((await stepsOf(c, token)).ONLY.attempt).toBe(s.attempt);
    });
  });

  test("retention keeps a run with one recent update and a run with one PENDING step, and deletes an old terminal one", async () => {
    await withTx(db.pool, async (c) => {
      const mk = async () => {
        const token = await startRunSql(c, "test_dag", {});
        await c.query("update throughline.step set status = 'CANCELLED' where token = $1", [token]);
        return token;
      };
      const oldTerminal = await mk();
      const oneRecent = await mk();
      const onePending = await startRunSql(c, "test_dag", {});
      // Backdate as time would have: triggers off for this, as only time may write these columns.
      await c.query("set local session_replication_role = replica");
      await c.query("update throughline.step set updated_at = now() - interval '100 hours' where token = any($1)", [[oldTerminal, oneRecent, onePending]]);
      await c.query("update throughline.run set updated_at = now() - interval '100 hours' where token = any($1)", [[oldTerminal, oneRecent, onePending]]);
      await c.query("update throughline.step set updated_at = now() - interval '1 hour' where token = $1 and step = 'METRICS_UPDATE'", [oneRecent]);
      await c.query("set local session_replication_role = origin");
      const purged = (await c.query("select throughline.purge_runs(now() - interval '72 hours', 100) as n")).rows[0].n;
      expect(purged).toBe(1);
      const left = await c.query("select token from throughline.run where token = any($1)", [[oldTerminal, oneRecent, onePending]]);
      expect(left.rows.map((r) => r.token).sort()).toEqual([oneRecent, onePending].sort());
      expect((await c.query("select count(*)::int as n from throughline.step where token = $1", [oldTerminal])).rows[0].n).toBe(0);
      expect((await c.query("select count(*)::int as n from throughline.event where token = $1", [oldTerminal])).rows[0].n).toBe(0);
    });
  });

  test("retention uses a strict < against the cutoff", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      await c.query("update throughline.step set status = 'CANCELLED' where token = $1", [token]);
      // The cutoff is read in SQL: a JavaScript Date would drop the microseconds.
      const at = "(select updated_at from throughline.run where token = $1)";
      expect((await c.query(`select throughline.purge_runs(${at}, 100) as n`, [token])).rows[0].n).toBe(0); // equal: kept
      expect((await c.query(`select throughline.purge_runs(${at} + interval '1 microsecond', 100) as n`, [token])).rows[0].n).toBe(1);
    });
  });

  test("retention deletes in batches of the given size", async () => {
    await withTx(db.pool, async (c) => {
      for (let i = 0; i < 5; i++) {
        const token = await startRunSql(c, "test_single", {});
        await c.query("update throughline.step set status = 'CANCELLED' where token = $1", [token]);
      }
      const cutoff = "now() + interval '1 second'";
      expect((await c.query(`select throughline.purge_runs(${cutoff}, 2) as n`)).rows[0].n).toBe(2);
      expect((await c.query(`select throughline.purge_runs(${cutoff}, 2) as n`)).rows[0].n).toBe(2);
      expect((await c.query(`select throughline.purge_runs(${cutoff}, 2) as n`)).rows[0].n).toBe(1);
    });
  });
});

describe("the maintenance task", () => {
  const db = useTestDatabase();

  test("runs timeouts through Graphile Worker cron’s task, safe to trigger from anywhere", async () => {
    // A workflow whose only step times out after 0.2 s and whose task no worker runs.
    await db.pool.query(`select throughline.register_workflow('test_never_runs',
      '[{"step": "STUCK", "task": "nobody_runs_this", "timeoutSeconds": 0.2}]'::jsonb, 'test', false)`);
    const token = await startRunSql(db.pool, "test_never_runs", {});
    const worker = await startTestWorker(db.pool);
    try {
      await new Promise((r) => setTimeout(r, 300));
      await db.pool.query("select graphile_worker.add_job('throughline_maintenance', '{}'::json)");
      await waitFor(async () => (await stepsOf(db.pool, token)).STUCK.status === "TIMED_OUT", { what: "the step to time out" });
      await new Promise((r) => setTimeout(r, 300));
      await db.pool.query("select graphile_worker.add_job('throughline_maintenance', '{}'::json)");
      await waitFor(async () => (await stepsOf(db.pool, token)).STUCK.status === "FAILED", { what: "the step to fail" });
      expect((await stepsOf(db.pool, token)).STUCK.failure_reason).toBe("Timed out");
    } finally {
      await worker.stop();
    }
  });
});
