// Runs: start, cancel, retry, and the reads CI pipelines make. Each function is one call of one SQL
// function in schema throughline (see sql/current/300-start_run.sql, 320-run_control.sql).
import type pg from "pg";
import { translateDbError } from "./errors.ts";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

export type StepStatus = "PENDING" | "COMPLETED" | "FAILED" | "CANCELLED" | "NOT_APPLICABLE" | "TIMED_OUT";
export type RunStatus = "PENDING" | "COMPLETED" | "FAILED" | "CANCELLED";

/** Timestamps are ISO strings: these rows are read as JSON (one statement, one snapshot). */
export interface RunRow {
  token: string;
  workflow: string;
  subject: string | null;
  input: Record<string, unknown>;
  labels: Record<string, unknown>;
  status: RunStatus;
  admitted_at: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  steps_total: number;
  steps_open: number;
  steps_failed: number;
  steps_cancelled: number;
}

export interface StepRow {
  id: string;
  token: string;
  parent_step_id: string | null;
  step: string;
  status: StepStatus;
  started_at: string | null;
  updated_at: string;
  failure_reason: string | null;
  status_reason: string | null;
  attempt: number;
  output: unknown;
}

export interface StartRunArgs {
  workflow: string;
  input: Record<string, unknown>;
  subject?: string | null;
  labels?: Record<string, string>;
  token?: string | null;
}

export async function startRun(db: Queryable, args: StartRunArgs): Promise<RunRow> {
  try {
    const { rows } = await db.query<{ run: RunRow }>({
      name: "throughline/start_run",
      text: "select to_jsonb(r) as run from throughline.start_run(workflow => $1::text, input => $2::jsonb, subject => $3::text, labels => $4::jsonb, token => $5::uuid) r",
      values: [args.workflow, JSON.stringify(args.input), args.subject ?? null, JSON.stringify(args.labels ?? {}), args.token ?? null],
    });
    return rows[0].run;
  } catch (e) {
    translateDbError(e);
  }
}

export async function cancelRun(db: Queryable, token: string, reason?: string): Promise<RunRow> {
  try {
    const { rows } = await db.query<{ run: RunRow }>("select to_jsonb(r) as run from throughline.cancel_run($1::uuid, $2::text) r", [token, reason ?? null]);
    return rows[0].run;
  } catch (e) {
    translateDbError(e);
  }
}

export async function retryStep(db: Queryable, stepId: string, reason?: string): Promise<RunRow> {
  try {
    const { rows } = await db.query<{ run: RunRow }>("select to_jsonb(r) as run from throughline.retry_step($1::bigint, $2::text) r", [stepId, reason ?? null]);
    return rows[0].run;
  } catch (e) {
    translateDbError(e);
  }
}

export async function isProcessing(db: Queryable, token: string): Promise<boolean> {
  const { rows } = await db.query({ name: "throughline/is_processing", text: "select throughline.is_processing($1::uuid) as p", values: [token] });
  return rows[0].p;
}

/** A run and its steps in one statement (one snapshot), or undefined for an unknown token. */
export async function getRunWithSteps(db: Queryable, token: string): Promise<{ run: RunRow; steps: StepRow[] } | undefined> {
  const { rows } = await db.query({
    name: "throughline/get_run_with_steps",
    text: `select to_jsonb(r) as run,
                  coalesce((select jsonb_agg(to_jsonb(s) order by s.id) from throughline.step s where s.token = r.token), '[]') as steps
           from throughline.run r where r.token = $1::uuid`,
    values: [token],
  });
  if (!rows[0]) return undefined;
  return { run: rows[0].run, steps: rows[0].steps };
}
