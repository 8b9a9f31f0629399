// The worker's side of a step: claim an attempt, heartbeat, end it. One SQL function per call
// (sql/current/310-step_attempts.sql); every write is fenced by (step id, attempt) in SQL.
import type pg from "pg";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

/** What begin_step hands a step: the run's input and the results of the steps it depends on. */
export interface ClaimedStep {
  stepId: string;
  token: string;
  step: string;
  /** The task that runs it (tasks/<task>.ts). */
  task: string;
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

export interface FinishResult {
  /** False when the attempt was no longer current: nothing changed. */
  applied: boolean;
  /** Steps this made runnable that the worker now holds (leased to it), to run next. */
  claimed: ClaimedStep[];
}

/**
 * Ends an attempt COMPLETED (with output) or NOT_APPLICABLE (with reason) and, in the same
 * transaction, claims up to claimMax of the steps that became runnable (sql/current/900-inline_claims.sql).
 */
export async function finishStep(
  db: Queryable,
  args: { stepId: string; attempt: number; outcome: "COMPLETED" | "NOT_APPLICABLE"; output?: unknown; reason?: string;
    workerId: string; leaseSeconds: number; claimMax: number; tasks: string[] },
): Promise<FinishResult> {
  const { rows } = await db.query({
    name: "throughline/finish_step",
    text: `select throughline.finish_step($1::bigint, $2::integer, $3::text, $4::jsonb, $5::text, $6::text,
             make_interval(secs => $7::double precision), $8::integer, $9::text[]) as result`,
    values: [args.stepId, args.attempt, args.outcome, args.output === undefined ? null : JSON.stringify(args.output),
      args.reason ?? null, args.workerId, args.leaseSeconds, args.claimMax, args.tasks],
  });
  const result = rows[0].result as { applied: boolean; claimed: ClaimedStep[] };
  return { applied: result.applied, claimed: result.claimed.map((c) => ({ ...c, stepId: String(c.stepId) })) };
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
