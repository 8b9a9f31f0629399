// The worker's side of a step: claim an attempt, heartbeat, end it. One SQL function per call
// (sql/current/310-step_attempts.sql); every write is fenced by (step id, attempt) in SQL.
import type pg from "pg";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

/** What begin_step hands a step: the run's input and the results of the steps it depends on. */
export interface ClaimedStep {
  stepId: string;
  token: string;
  step: string;
  attempt: number;
  maxAttempts: number;
  workflow: string;
  subject: string | null;
  input: unknown;
  labels: Record<string, string>;
  upstream: Record<string, { status: string; output: unknown }>;
}

export async function beginStep(db: Queryable, stepId: string, attempt: number, workerId: string, leaseSeconds: number): Promise<ClaimedStep | null> {
  const { rows } = await db.query({
    name: "throughline/begin_step",
    text: "select throughline.begin_step($1::bigint, $2::integer, $3::text, make_interval(secs => $4::double precision)) as claim",
    values: [stepId, attempt, workerId, leaseSeconds],
  });
  const claim = rows[0].claim;
  return claim ? { ...claim, stepId: String(claim.stepId) } : null;
}

/** Returns the ids of the steps whose leases were extended; the others are no longer ours. */
export async function heartbeatSteps(db: Queryable, workerId: string, steps: { stepId: string; attempt: number }[], leaseSeconds: number): Promise<Set<string>> {
  const { rows } = await db.query({
    name: "throughline/heartbeat_steps",
    text: "select unnest(throughline.heartbeat_steps($1::text, $2::bigint[], $3::integer[], make_interval(secs => $4::double precision)))::text as id",
    values: [workerId, steps.map((s) => s.stepId), steps.map((s) => s.attempt), leaseSeconds],
  });
  return new Set(rows.map((r) => r.id));
}

export async function completeStep(db: Queryable, stepId: string, attempt: number, output: unknown): Promise<boolean> {
  const { rows } = await db.query({
    name: "throughline/complete_step",
    text: "select throughline.complete_step($1::bigint, $2::integer, $3::jsonb) as ok",
    values: [stepId, attempt, output === undefined ? null : JSON.stringify(output)],
  });
  return rows[0].ok;
}

export async function skipStep(db: Queryable, stepId: string, attempt: number, reason: string): Promise<boolean> {
  const { rows } = await db.query({
    name: "throughline/skip_step",
    text: "select throughline.skip_step($1::bigint, $2::integer, $3::text) as ok",
    values: [stepId, attempt, reason],
  });
  return rows[0].ok;
}

export type FailOutcome = "RETRY_SCHEDULED" | "FAILED" | "STALE";

export async function failStep(db: Queryable, stepId: string, attempt: number, error: string, retryable: boolean): Promise<FailOutcome> {
  const { rows } = await db.query({
    name: "throughline/fail_step",
    text: "select throughline.fail_step($1::bigint, $2::integer, $3::text, $4::boolean) as outcome",
    values: [stepId, attempt, error, retryable],
  });
  return rows[0].outcome;
}
