// E: a large retained history, and its retention purge.
//
// Retained runs are copies of one real ended run of the bench (its run row, steps, attempts and
// events), made in SQL in one statement per table with session_replication_role = replica (no
// triggers, no foreign-key checks: the rows are consistent by construction) and synchronous_commit
// off (setup data). The column lists are read from the catalog, so a column added to these tables by
// the engine is copied from the template row as it is: only identities, tokens and times are
// rewritten. Each copy g gets token 00000000-0000-4000-8000-<g in hex>, step ids base + g·K + k (K steps per run,
// k the template step's rank; parent_step_id mapped the same way) and times 30 days ago, so
// purge_runs(now() − 1 day) deletes exactly them and nothing of the bench's own runs.
import { performance } from "node:perf_hooks";
import pg from "pg";
import { sleep } from "./stats.ts";

async function columns(db: pg.Client, table: string): Promise<string[]> {
  const { rows } = await db.query(
    `select column_name from information_schema.columns
     where table_schema = 'throughline' and table_name = $1 and is_generated = 'NEVER' and coalesce(identity_generation, '') <> 'ALWAYS'
     order by ordinal_position`, [table]);
  return rows.map((r) => r.column_name as string);
}

function insertSql(table: string, cols: string[], overrides: Record<string, string>, from: string): string {
  const exprs = cols.map((c) => (c in overrides ? `${overrides[c]}` : `t.${c}`));
  return `insert into throughline.${table} (${cols.join(", ")}) select ${exprs.join(", ")} from ${from}`;
}

export interface RetainedResult {
  runs: number;
  steps: number;
  events: number;
  attempts: number;
  /** Inserting the rows. */
  seconds: number;
  /** vacuum (analyze) of the four tables + checkpoint. */
  settleSeconds: number;
}

/** Adds retained ended runs (copies of `templateToken`) until `steps` step rows were added. */
export async function addRetainedRuns(url: string, templateToken: string, steps: number, onProgress?: (msg: string) => void): Promise<RetainedResult> {
  const t0 = performance.now();
  // Two connections copy alternate chunks (2 cores).
  const conns = [new pg.Client({ connectionString: url }), new pg.Client({ connectionString: url })];
  const db = conns[0];
  await Promise.all(conns.map((c) => c.connect()));
  try {
    for (const c of conns) {
      await c.query("set session_replication_role = replica; set synchronous_commit = off; set work_mem = '64MB'");
      await c.query(`create temp table tpl_step as
        select s.*, (row_number() over (order by s.id) - 1)::bigint as k_ from throughline.step s where s.token = $1::uuid`, [templateToken]);
    }
    const K = Number((await db.query("select count(*) as n from tpl_step")).rows[0].n);
    if (K === 0) throw new Error(`E: template run ${templateToken} has no steps`);
    const runs = Math.ceil(steps / K);
    const base = Number((await db.query("select coalesce(max(id), 0) + 1000 as b from throughline.step")).rows[0].b);
    // Tokens in copy order (a v4-shaped UUID with g in its last 12 hex digits): index inserts append
    // instead of landing all over the indexes, which makes generating 1M steps several times faster.
    // The lookups C does are the same index descents either way.
    const tokenOf = "('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid";
    const old = "(now() - interval '30 days' - g * interval '10 ms')";
    const stepId = (k: string) => `(${base}::bigint + (g - 1) * ${K} + ${k})`;
    const chunk = 25_000; // runs per transaction: bounded statements, progress visible
    let events = 0;
    let attempts = 0;
    const runCols = await columns(db, "run");
    const stepCols = await columns(db, "step");
    const attemptCols = await columns(db, "step_attempt");
    const eventCols = await columns(db, "event");
    let nextChunk = 1;
    let copied = 0;
    const copy = async (db: pg.Client) => {
     for (let g0 = nextChunk; g0 <= runs; g0 = nextChunk) {
      nextChunk += chunk;
      const g1 = Math.min(runs, g0 + chunk - 1);
      const series = `generate_series(${g0}, ${g1}) g`;
      await db.query("begin");
      await db.query(insertSql("run", runCols, {
        token: tokenOf, labels: `'{"bench":"retained"}'::jsonb`, created_at: old, updated_at: old, admitted_at: old, completed_at: old,
      }, `throughline.run t cross join ${series} where t.token = '${templateToken}'::uuid`));
      await db.query(insertSql("step", stepCols, {
        id: stepId("t.k_"), token: tokenOf, parent_step_id: `case when t.parent_step_id is null then null else ${stepId("p.k_")} end`,
        started_at: `case when t.started_at is null then null else ${old} end`, updated_at: old,
        ready_at: `case when t.ready_at is null then null else ${old} end`,
        lease_expires_at: "null", heartbeat_at: "null", locked_by: "null",
      }, `tpl_step t left join tpl_step p on p.id = t.parent_step_id cross join ${series}`));
      attempts += (await db.query(insertSql("step_attempt", attemptCols, {
        step_id: stepId("s.k_"), token: tokenOf, started_at: old, ended_at: `case when t.ended_at is null then null else ${old} end`,
      }, `throughline.step_attempt t join tpl_step s on s.id = t.step_id cross join ${series}`))).rowCount ?? 0;
      events += (await db.query(insertSql("event", eventCols, {
        step_id: `case when t.step_id is null then null else ${stepId("s.k_")} end`, token: tokenOf, at: old,
      }, `throughline.event t left join tpl_step s on s.id = t.step_id cross join ${series} where t.token = '${templateToken}'::uuid`))).rowCount ?? 0;
      await db.query("commit");
      copied += (g1 - g0 + 1) * K;
      onProgress?.(`${copied} of ${runs * K} retained steps (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
     }
    };
    await Promise.all(conns.map(copy));
    // Identity: the engine's next step id must come after ours.
    await db.query("select setval(pg_get_serial_sequence('throughline.step', 'id'), (select max(id) from throughline.step))");
    await db.query("set session_replication_role = origin");
    const loaded = performance.now();
    // A bulk load leaves what a history built over weeks would not: unvacuumed pages (autovacuum's
    // insert threshold fires on all four tables at once, and hint bits are set by the first readers)
    // and ~2 GB of dirty buffers for the next checkpoints. Both would land on the reads and the purge
    // below; in production autovacuum and the checkpointer dealt with them long ago. So: vacuum,
    // analyze and checkpoint now, timed apart.
    for (const t of ["run", "step", "step_attempt", "event"]) await db.query(`vacuum (analyze) throughline.${t}`);
    await db.query("checkpoint");
    return { runs, steps: runs * K, events, attempts, seconds: (loaded - t0) / 1000, settleSeconds: (performance.now() - loaded) / 1000 };
  } finally {
    await Promise.all(conns.map((c) => c.end()));
  }
}

export interface PurgeResult {
  /** Runs deleted, batches, seconds; finished = a batch came back short within the time cap. */
  deleted: number;
  batches: number;
  seconds: number;
  finished: boolean;
  /** Per-batch durations, ms. */
  batchMs: number[];
}

/**
 * The retention purge as the maintenance task does it (src/db/maintenance.ts purgeRuns): purge_runs
 * in batches, each its own transaction, until a batch comes back short — here with cutoff now() − 1
 * day, and at most `maxSeconds`.
 */
export async function purge(url: string, batchSize: number, maxSeconds: number): Promise<PurgeResult> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const t0 = performance.now();
  const batchMs: number[] = [];
  let deleted = 0;
  let finished = false;
  try {
    while (performance.now() - t0 < maxSeconds * 1000) {
      const t = performance.now();
      const { rows } = await db.query({ name: "purge", text: "select throughline.purge_runs(now() - interval '1 day', $1::integer) as n", values: [batchSize] });
      batchMs.push(performance.now() - t);
      deleted += rows[0].n;
      if (rows[0].n < batchSize) { finished = true; break; }
    }
  } finally {
    await db.end();
  }
  return { deleted, batches: batchMs.length, seconds: (performance.now() - t0) / 1000, finished, batchMs };
}

/**
 * Probes: a small run (`workflow`, one step) started every `everyMs` from one connection; each one's
 * client-observed end-to-end time (start_run issued → seen ended: LISTEN "throughline:events", plus a
 * poll every 20 ms in case the engine does not notify). Runs until stop() and until all probes ended.
 */
export interface Probe {
  /** When start_run was issued (performance.now() of the bench process). */
  issuedAt: number;
  /** Issued → seen ended, ms. */
  e2e: number;
}

export function probeRuns(url: string, workflow: string, everyMs: number): { stop(): Promise<{ probes: Probe[]; open: number }> } {
  // stopAt is set before stopping, so the checker's 30 s grace period counts from the real stop.
  let stopping = false;
  let stopAt = 0;
  const issued = new Map<string, number>();
  const probes: Probe[] = [];
  const done = (async () => {
    const starter = new pg.Client({ connectionString: url });
    const checker = new pg.Client({ connectionString: url });
    await Promise.all([starter.connect(), checker.connect()]);
    await checker.query('listen "throughline:events"');
    let wake: (() => void) | undefined;
    checker.on("notification", () => wake?.());
    const check = (async () => {
      const deadline = () => stopping && Date.now() > stopAt + 30_000;
      while (!(stopping && issued.size === 0) && !deadline()) {
        await new Promise<void>((resolve) => { const t = setTimeout(resolve, 20); wake = () => { clearTimeout(t); resolve(); }; });
        if (issued.size === 0) continue;
        const { rows } = await checker.query({ name: "ended", text: "select token::text from throughline.run where token = any($1::uuid[]) and status <> 'PENDING'", values: [[...issued.keys()]] });
        const t = performance.now();
        for (const r of rows) {
          probes.push({ issuedAt: issued.get(r.token)!, e2e: t - issued.get(r.token)! });
          issued.delete(r.token);
        }
      }
    })();
    try {
      for (let next = performance.now(); !stopping; next += everyMs) {
        const t = performance.now();
        const { rows } = await starter.query({ name: "probe", text: "select (throughline.start_run($1, '{}'::jsonb, labels => '{\"bench\":\"probe\"}'::jsonb)).token::text as token", values: [workflow] });
        issued.set(rows[0].token, t);
        await sleep(Math.max(0, next + everyMs - performance.now()));
      }
      await check;
    } finally {
      await Promise.all([starter.end(), checker.end()]);
    }
  })();
  return {
    async stop() {
      stopAt = Date.now();
      stopping = true;
      await done;
      return { probes, open: issued.size };
    },
  };
}
