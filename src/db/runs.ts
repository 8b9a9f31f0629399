// Starting runs from TypeScript (the REST routes): one call of throughline.start_run. GraphQL calls
// the SQL functions itself; the CLI talks HTTP.
import type pg from "pg";
import { withDbErrors } from "./errors.ts";

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

export interface StartRunArgs {
  workflow: string;
  input: Record<string, unknown>;
  subject?: string | null;
  labels?: Record<string, string>;
  token?: string | null;
}

export function startRun(db: Queryable, args: StartRunArgs): Promise<RunRow> {
  return withDbErrors(async () => {
    const { rows } = await db.query<{ run: RunRow }>({
      name: "throughline/start_run",
      text: "select to_jsonb(r) as run from throughline.start_run(workflow => $1::text, input => $2::jsonb, subject => $3::text, labels => $4::jsonb, token => $5::uuid) r",
      values: [args.workflow, JSON.stringify(args.input), args.subject ?? null, JSON.stringify(args.labels ?? {}), args.token ?? null],
    });
    return rows[0].run;
  });
}

