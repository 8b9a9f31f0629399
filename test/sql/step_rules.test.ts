// The rules of a step's life, tried from plain SQL (as a DBA or a buggy client would), on every
// supported Postgres major. No worker runs here: the tests play the worker with SQL calls.
import { describe, expect, test } from "vitest";
import type pg from "pg";
import { servers, startRunSql, stepsOf, useTestDatabase, withTx } from "../helpers.ts";

// Test-only introspection: the public graphile_worker.jobs view has no payload, so the tests read
// the private table to see which (step, attempt) a job rings for. Runtime code never does this.
const jobsSql = `select j.task_identifier, p.payload, j.run_at > now() as later
  from graphile_worker.jobs j join graphile_worker._private_jobs p on p.id = j.id
  join throughline.step s on s.id = (p.payload->>'stepId')::bigint`;

async function ids(db: pg.PoolClient, token: string): Promise<Record<string, { id: string; attempt: number }>> {
  const { rows } = await db.query("select step, id::text, attempt from throughline.step where token = $1", [token]);
  return Object.fromEntries(rows.map((r) => [r.step, { id: r.id, attempt: r.attempt }]));
}

/** Plays a worker: claims the step's current attempt and completes it. */
async function completeNow(db: pg.PoolClient, token: string, step: string, output: unknown = { ok: true }) {
  const s = (await ids(db, token))[step];
  const claim = await db.query("select throughline.begin_step($1, $2, 'test-worker') as c", [s.id, s.attempt]);
  expect(claim.rows[0].c, `claim ${step}`).not.toBeNull();
  const done = await db.query("select throughline.complete_step($1, $2, $3::jsonb) as ok", [s.id, s.attempt, JSON.stringify(output)]);
  expect(done.rows[0].ok).toBe(true);
}

async function expectSqlError(db: pg.PoolClient, sql: string, params: unknown[], code: string, message: RegExp) {
  await db.query("savepoint s");
  const error = await db.query(sql, params).then(() => undefined, (e) => e);
  await db.query("rollback to savepoint s");
  expect(error, `expected ${sql} to fail`).toBeDefined();
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
}

describe.each(servers())("$name", (server) => {
  const db = useTestDatabase(() => server);

  test("start_run creates every step PENDING at once and enqueues only the root", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      const steps = await stepsOf(c, token);
      expect(Object.keys(steps)).toEqual(["BOM_CONSUMPTION", "BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]);
      expect(Object.values(steps).every((s) => s.status === "PENDING")).toBe(true);
      const jobs = await c.query(`${jobsSql} where s.token = $1`, [token]);
      expect(jobs.rows).toHaveLength(1);
      expect((await c.query("select throughline.is_processing($1) as p", [token])).rows[0].p).toBe(true);
      // the hyades tree: POLICY_EVALUATION hangs under its first dependency
      const tree = await c.query(
        "select w.step, p.step as parent from throughline.workflow_state w left join throughline.workflow_state p on p.id = w.parent_step_id where w.token = $1 order by w.id", [token]);
      expect(tree.rows.map((r) => `${r.parent ?? "-"}>${r.step}`)).toEqual([
        "->BOM_CONSUMPTION", "BOM_CONSUMPTION>BOM_PROCESSING", "BOM_PROCESSING>VULN_ANALYSIS",
        "BOM_PROCESSING>REPO_META_ANALYSIS", "VULN_ANALYSIS>POLICY_EVALUATION", "POLICY_EVALUATION>METRICS_UPDATE"]);
    });
  });

  test("completing a step enqueues a dependent only when all its dependencies are satisfied", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await completeNow(c, token, "BOM_CONSUMPTION");
      await completeNow(c, token, "BOM_PROCESSING");
      let s = await ids(c, token);
      expect(s.VULN_ANALYSIS.attempt).toBe(1);
      expect(s.REPO_META_ANALYSIS.attempt).toBe(1);
      expect(s.POLICY_EVALUATION.attempt).toBe(0); // not runnable yet
      await completeNow(c, token, "VULN_ANALYSIS");
      s = await ids(c, token);
      expect(s.POLICY_EVALUATION.attempt).toBe(0); // still waits for REPO_META_ANALYSIS
      const ra = s.REPO_META_ANALYSIS;
      await c.query("select throughline.begin_step($1, $2, 'w')", [ra.id, ra.attempt]);
      await c.query("select throughline.skip_step($1, $2, 'nothing to do')", [ra.id, ra.attempt]);
      s = await ids(c, token);
      expect(s.POLICY_EVALUATION.attempt).toBe(1); // NOT_APPLICABLE satisfies a dependency
      await completeNow(c, token, "POLICY_EVALUATION");
      await completeNow(c, token, "METRICS_UPDATE");
      const run = await c.query("select status, steps_open, completed_at from throughline.run where token = $1", [token]);
      expect(run.rows[0]).toMatchObject({ status: "COMPLETED", steps_open: 0 });
      expect((await c.query("select throughline.is_processing($1) as p", [token])).rows[0].p).toBe(false);
    });
  });

  test("a failure cancels every open step downstream, in one transaction with one updated_at", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await completeNow(c, token, "BOM_CONSUMPTION");
      const p = (await ids(c, token)).BOM_PROCESSING;
      await c.query("select throughline.begin_step($1, $2, 'w')", [p.id, p.attempt]);
      expect((await c.query("select throughline.fail_step($1, $2, 'disk full', false) as o", [p.id, p.attempt])).rows[0].o).toBe("FAILED");
      const steps = await stepsOf(c, token);
      expect(steps.BOM_CONSUMPTION.status).toBe("COMPLETED"); // terminal upstream untouched
      expect(steps.BOM_PROCESSING).toMatchObject({ status: "FAILED", failure_reason: "disk full" });
      for (const name of ["VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]) {
        expect(steps[name].status).toBe("CANCELLED");
        expect(steps[name].status_reason).toBe("Upstream step BOM_PROCESSING failed");
        expect(steps[name].updated_at.getTime()).toBe(steps.BOM_PROCESSING.updated_at.getTime());
      }
      expect((await c.query("select status from throughline.run where token = $1", [token])).rows[0].status).toBe("FAILED");
    });
  });

  test("a plain UPDATE to FAILED cascades too, and needs a reason", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await expectSqlError(c, "update throughline.step set status = 'FAILED' where token = $1 and step = 'BOM_CONSUMPTION'", [token],
        "23514", /step_failed_has_reason/);
      await expectSqlError(c, "update throughline.step set status = 'FAILED', failure_reason = '  ' where token = $1 and step = 'BOM_CONSUMPTION'", [token],
        "23514", /step_failed_has_reason/);
      await c.query("update throughline.step set status = 'FAILED', failure_reason = 'by hand' where token = $1 and step = 'BOM_CONSUMPTION'", [token]);
      const steps = await stepsOf(c, token);
      expect(Object.values(steps).filter((s) => s.status === "CANCELLED")).toHaveLength(5);
    });
  });

  test("terminal steps never change: no plain UPDATE can flip FAILED to COMPLETED or edit a finished row", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await completeNow(c, token, "BOM_CONSUMPTION");
      await c.query("update throughline.step set status = 'FAILED', failure_reason = 'x' where token = $1 and step = 'BOM_PROCESSING'", [token]);
      await expectSqlError(c, "update throughline.step set status = 'COMPLETED' where token = $1 and step = 'BOM_PROCESSING'", [token],
        "TL002", /cannot go from FAILED to COMPLETED/);
      await expectSqlError(c, "update throughline.step set status = 'PENDING' where token = $1 and step = 'METRICS_UPDATE'", [token],
        "TL002", /cannot go from CANCELLED to PENDING/);
      await expectSqlError(c, "update throughline.step set output = '{\"forged\": true}' where token = $1 and step = 'BOM_CONSUMPTION'", [token],
        "TL003", /is COMPLETED and can no longer change/);
      await expectSqlError(c, "update throughline.step set step = 'OTHER' where token = $1 and step = 'BOM_CONSUMPTION'", [token],
        "TL001", /cannot change its identity/);
    });
  });

  test("TIMED_OUT may still complete, fail or be cancelled, but never go back to PENDING", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await c.query("update throughline.step set status = 'TIMED_OUT' where token = $1 and step = 'BOM_CONSUMPTION'", [token]);
      await expectSqlError(c, "update throughline.step set status = 'PENDING' where token = $1 and step = 'BOM_CONSUMPTION'", [token],
        "TL002", /TIMED_OUT to PENDING/);
      await expectSqlError(c, "update throughline.step set status = 'NOT_APPLICABLE' where token = $1 and step = 'BOM_CONSUMPTION'", [token],
        "TL002", /TIMED_OUT to NOT_APPLICABLE/);
      expect((await c.query("select throughline.is_processing($1) as p", [token])).rows[0].p).toBe(true);
      await completeNow(c, token, "BOM_CONSUMPTION");
      expect((await stepsOf(c, token)).BOM_CONSUMPTION.status).toBe("COMPLETED");
    });
  });

  test("a late or duplicate completion from an old attempt changes nothing", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      const s = (await ids(c, token)).BOM_CONSUMPTION;
      await c.query("select throughline.begin_step($1, 1, 'w1')", [s.id]);
      // a second claim of the same attempt (a redelivered job) gets nothing
      expect((await c.query("select throughline.begin_step($1, 1, 'w2') as c", [s.id])).rows[0].c).toBeNull();
      expect((await c.query("select throughline.fail_step($1, 1, 'flaky network') as o", [s.id])).rows[0].o).toBe("RETRY_SCHEDULED");
      // attempt 1 is over: its result is refused, whatever it says
      expect((await c.query("select throughline.complete_step($1, 1, '{\"late\": true}') as ok", [s.id])).rows[0].ok).toBe(false);
      expect((await c.query("select throughline.skip_step($1, 1, 'late') as ok", [s.id])).rows[0].ok).toBe(false);
      expect((await c.query("select throughline.fail_step($1, 1, 'late', false) as o", [s.id])).rows[0].o).toBe("STALE");
      let step = (await stepsOf(c, token)).BOM_CONSUMPTION;
      expect(step).toMatchObject({ status: "PENDING", attempt: 2, output: null });
      // attempt 2 completes; a duplicate completion afterwards changes nothing
      await c.query("select throughline.begin_step($1, 2, 'w2')", [s.id]);
      expect((await c.query("select throughline.complete_step($1, 2, '{\"n\": 2}') as ok", [s.id])).rows[0].ok).toBe(true);
      expect((await c.query("select throughline.complete_step($1, 2, '{\"n\": 3}') as ok", [s.id])).rows[0].ok).toBe(false);
      step = (await stepsOf(c, token)).BOM_CONSUMPTION;
      expect(step).toMatchObject({ status: "COMPLETED", output: { n: 2 } });
      const history = await c.query("select attempt, outcome, error from throughline.step_attempt where step_id = $1 order by attempt", [s.id]);
      expect(history.rows).toEqual([
        { attempt: 1, outcome: "RETRY", error: "flaky network" },
        { attempt: 2, outcome: "COMPLETED", error: null },
      ]);
    });
  });

  test("retries back off exponentially and the last attempt fails the step with the error", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {}); // 3 attempts, 50 ms × 2
      const s = (await ids(c, token)).ONLY;
      const delays: number[] = [];
      for (let attempt = 1; attempt <= 2; attempt++) {
        await c.query("select throughline.begin_step($1, $2, 'w')", [s.id, attempt]);
        await c.query("select throughline.fail_step($1, $2, 'boom')", [s.id, attempt]);
        const { rows } = await c.query("select extract(epoch from ready_at - now()) * 1000 as ms from throughline.step where id = $1", [s.id]);
        delays.push(Number(rows[0].ms));
      }
      expect(delays[0]).toBeGreaterThanOrEqual(50 * 0.75);
      expect(delays[0]).toBeLessThanOrEqual(50 * 1.25);
      expect(delays[1]).toBeGreaterThanOrEqual(100 * 0.75);
      expect(delays[1]).toBeLessThanOrEqual(100 * 1.25);
      const job = await c.query(`${jobsSql} where s.id = $1 and (p.payload->>'attempt')::int = 3`, [s.id]);
      expect(job.rows[0].later).toBe(true);
      await c.query("select throughline.begin_step($1, 3, 'w')", [s.id]);
      expect((await c.query("select throughline.fail_step($1, 3, 'boom') as o", [s.id])).rows[0].o).toBe("FAILED");
      expect((await stepsOf(c, token)).ONLY).toMatchObject({ status: "FAILED", failure_reason: "boom (attempt 3 of 3)" });
    });
  });

  test("steps are created only by start_run, and the event log is append-only", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      await expectSqlError(c,
        "insert into throughline.step (token, step, task_identifier, remaining_deps, max_attempts, timeout) values ($1, 'EXTRA', 'test_step', 0, 1, '1 hour')",
        [token], "TL004", /created only by throughline.start_run/);
      await expectSqlError(c, "update throughline.event set kind = 'RUN_ENDED' where token = $1", [token], "TL005", /append-only/);
    });
  });

  test("a recorded retry reopens a failed step and its cancelled downstream", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_dag", {});
      await completeNow(c, token, "BOM_CONSUMPTION");
      const p = (await ids(c, token)).BOM_PROCESSING;
      await c.query("select throughline.begin_step($1, $2, 'w')", [p.id, p.attempt]);
      await c.query("select throughline.fail_step($1, $2, 'bad', false)", [p.id, p.attempt]);
      expect((await c.query("select status from throughline.run where token = $1", [token])).rows[0].status).toBe("FAILED");
      await expectSqlError(c, "select throughline.retry_step(s.id) from throughline.step s where s.token = $1 and s.step = 'BOM_CONSUMPTION'", [token],
        "TL409", /only FAILED or CANCELLED steps can be retried/);
      await c.query("select throughline.retry_step($1, 'fixed the disk')", [p.id]);
      const steps = await stepsOf(c, token);
      expect(steps.BOM_CONSUMPTION.status).toBe("COMPLETED");
      for (const name of ["BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]) {
        expect(steps[name]).toMatchObject({ status: "PENDING", failure_reason: null });
      }
      expect(steps.BOM_PROCESSING.attempt).toBe(p.attempt + 1); // enqueued again
      expect((await c.query("select status from throughline.run where token = $1", [token])).rows[0].status).toBe("PENDING");
      const retries = await c.query("select count(*)::int as n from throughline.step_retry where token = $1", [token]);
      expect(retries.rows[0].n).toBe(5);
      await completeNow(c, token, "BOM_PROCESSING");
      expect((await ids(c, token)).VULN_ANALYSIS.attempt).toBe(1);
    });
  });

  test("every transition is in the event log, in order", async () => {
    await withTx(db.pool, async (c) => {
      const token = await startRunSql(c, "test_single", {});
      await completeNow(c, token, "ONLY");
      const { rows } = await c.query("select kind, step, from_status, to_status from throughline.event where token = $1 order by seq", [token]);
      expect(rows).toEqual([
        { kind: "RUN_CREATED", step: null, from_status: null, to_status: "PENDING" },
        { kind: "RUN_ADMITTED", step: null, from_status: null, to_status: "PENDING" },
        { kind: "STEP_STARTED", step: "ONLY", from_status: "PENDING", to_status: "PENDING" },
        { kind: "STEP_STATUS", step: "ONLY", from_status: "PENDING", to_status: "COMPLETED" },
        { kind: "RUN_ENDED", step: null, from_status: "PENDING", to_status: "COMPLETED" },
      ]);
    });
  });
});
