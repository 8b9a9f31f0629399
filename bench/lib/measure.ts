// The measurements: A (throughput of a burst of runs), B (latency of one run at a time), the cost
// figures of F taken around A, and C's SQL status read while A runs.
import { performance } from "node:perf_hooks";
import pg from "pg";
import { cpuMs, statusKb, treeCpuMs } from "./proc.ts";
import { median, percentile, sleep } from "./stats.ts";

export const workflow = "test_dag";
export const stepsPerRun = 6;
/** BOM_CONSUMPTION → BOM_PROCESSING → (VULN | REPO_META) → POLICY_EVALUATION → METRICS_UPDATE. */
export const criticalPathSteps = 5;

// In the select list, so it runs once per row (a function in FROM without a reference to the row
// is evaluated once and its result rescanned).
const startRunsSql = `select (throughline.start_run('${workflow}', '{}'::jsonb, labels => $2::jsonb)).token
  from generate_series(1, $1::integer)`;

/** Starts n runs of the no-op DAG, `batch` start_run calls per transaction (one statement each). */
async function startRuns(db: pg.Pool | pg.Client, n: number, batch: number, label: string): Promise<string[]> {
  const tokens: string[] = [];
  for (let done = 0; done < n; done += batch) {
    const { rows } = await db.query(startRunsSql, [Math.min(batch, n - done), JSON.stringify({ bench: label })]);
    for (const r of rows) tokens.push(r.token);
  }
  return tokens;
}

async function waitForRuns(db: pg.Pool, label: string, n: number, timeoutMs: number): Promise<{ open: number; lastEnded: Date | null; polls: number }> {
  const end = Date.now() + timeoutMs;
  for (let polls = 1; ; polls++) {
    const { rows } = await db.query(
      `select count(*) filter (where status = 'PENDING')::int as open, count(*)::int as total, max(completed_at) as last_ended
       from throughline.run where labels @> $1::jsonb`, [JSON.stringify({ bench: label })]);
    const { open, total, last_ended } = rows[0];
    if (total === n && open === 0) return { open, lastEnded: last_ended, polls };
    if (Date.now() > end) return { open: open + (n - total), lastEnded: null, polls };
    await sleep(50);
  }
}

/** Warm-up: a few runs, waited for, so the worker is up, listening and its statements prepared. */
export async function warmUp(db: pg.Pool, runs: number, timeoutMs = 60_000): Promise<void> {
  await startRuns(db, runs, runs, "warmup");
  const r = await waitForRuns(db, "warmup", runs, timeoutMs);
  if (r.open > 0) throw new Error(`warm-up: ${r.open} of ${runs} runs did not end within ${timeoutMs / 1000} s (is the worker running?)`);
}

export interface ThroughputResult {
  runs: number;
  seconds: number;
  runsPerSec: number;
  stepsPerSec: number;
  failed: number;
  /** Postgres CPU (all its processes) per run, ms. */
  pgCpuMsPerRun: number;
  /** Worker process CPU per run, ms. */
  workerCpuMsPerRun: number;
  /** Committed transactions in the bench database per run (pg_stat_database.xact_commit delta,
   *  less the bench's own status reads and completion polls). */
  xactPerRun: number;
  /** WAL written per run (pg_stat_wal, the whole cluster: nothing else writes during the burst), kB,
   *  and the full-page images among it. */
  walKbPerRun: number;
  walFpiPerRun: number;
  /** Status reads done while the burst ran (C), latencies in ms, by interface (SQL, GraphQL, REST). */
  reads: Record<string, number[]>;
  /** Read errors by interface (a failed read is not timed). */
  readErrors: Record<string, number>;
  /** CPU per run of the extra processes named in cpuOf (e.g. the server), ms. */
  cpuMsPerRun: Record<string, number>;
}

async function walStats(db: pg.Pool): Promise<{ bytes: number; fpi: number }> {
  const { rows } = await db.query("select wal_bytes::bigint as bytes, wal_fpi::bigint as fpi from pg_stat_wal");
  return { bytes: Number(rows[0].bytes), fpi: Number(rows[0].fpi) };
}

async function xactCommit(db: pg.Pool): Promise<number> {
  const { rows } = await db.query("select xact_commit::bigint as n from pg_stat_database where datname = current_database()");
  return Number(rows[0].n);
}

/** One status read as a DBA or the REST layer would do it: is it processing, and its steps. */
export const statusReadSql = `select throughline.is_processing($1::uuid) as processing,
  (select coalesce(json_agg(json_build_object('id', s.id, 'step', s.step, 'status', s.status, 'started_at', s.started_at,
     'updated_at', s.updated_at, 'failure_reason', s.failure_reason) order by s.id), '[]') from throughline.step s where s.token = $1::uuid) as steps`;

/**
 * A: `runs` runs started at once (batches of `batch` start_run calls per transaction, from one
 * connection), processed by the already running worker; timed from the first enqueue (server clock)
 * to the last run's completed_at. Meanwhile, a reader does status reads of random started runs.
 */
export async function throughput(opts: {
  pool: pg.Pool; pgPid: number; workerPid: number; runs: number; batch: number; label: string;
  /** Interfaces to read the status through, taken in turn by ONE reader loop (C). */
  readers?: { name: string; read(token: string): Promise<void> }[];
  /** Pause between two reads, ms (default 10). */
  readPauseMs?: number;
  timeoutMs?: number;
  /** Extra processes whose CPU over the burst to report (pid by name). */
  cpuOf?: Record<string, number>;
  /** Called with the tokens of each batch of runs once it is committed (D: subscribers follow some). */
  onEnqueued?: (tokens: string[]) => void;
}): Promise<ThroughputResult> {
  const { pool, runs, batch, label } = opts;
  await sleep(1100); // let earlier statistics reach pg_stat_database (backends flush at most once a second)
  const xact0 = await xactCommit(pool);
  const wal0 = await walStats(pool);
  const pgCpu0 = treeCpuMs(opts.pgPid);
  const workerCpu0 = cpuMs(opts.workerPid);
  const extraCpu0 = Object.fromEntries(Object.entries(opts.cpuOf ?? {}).map(([k, pid]) => [k, cpuMs(pid)]));
  const t0: Date = (await pool.query("select clock_timestamp() as t")).rows[0].t;

  const tokens: string[] = [];
  const readers = opts.readers ?? [];
  const reads: Record<string, number[]> = Object.fromEntries(readers.map((r) => [r.name, []]));
  const readErrors: Record<string, number> = Object.fromEntries(readers.map((r) => [r.name, 0]));
  let enqueuing = true;
  let burstDone = false;
  const reader = readers.length ? (async () => {
    for (let i = 0; !burstDone; i++) {
      if (tokens.length === 0) { await sleep(5); i--; continue; }
      const r = readers[i % readers.length];
      const token = tokens[Math.floor(Math.random() * tokens.length)];
      const t = performance.now();
      try {
        await r.read(token);
        reads[r.name].push(performance.now() - t);
      } catch (e) {
        if (readErrors[r.name]++ === 0) process.stderr.write(`bench: ${r.name} read failed: ${(e as Error).message}\n`);
      }
      await sleep(opts.readPauseMs ?? 10); // a poller, not a flood: well under 100 reads/s
    }
  })() : Promise.resolve();

  try {
    const enqueuer = new pg.Client({ connectionString: (pool.options as { connectionString: string }).connectionString });
    await enqueuer.connect();
    try {
      for (let done = 0; done < runs; done += batch) {
        const started = await startRuns(enqueuer, Math.min(batch, runs - done), batch, label);
        tokens.push(...started);
        opts.onEnqueued?.(started);
      }
    } finally {
      enqueuing = false;
      await enqueuer.end();
    }
    const ended = await waitForRuns(pool, label, runs, opts.timeoutMs ?? 300_000);
    burstDone = true;
    if (!ended.lastEnded) throw new Error(`A: ${ended.open} of ${runs} runs still open after the timeout`);
    const pgCpu1 = treeCpuMs(opts.pgPid);
    const workerCpu1 = cpuMs(opts.workerPid);
    const cpuMsPerRun = Object.fromEntries(Object.entries(opts.cpuOf ?? {}).map(([k, pid]) => [k, (cpuMs(pid) - extraCpu0[k]) / runs]));
    await reader;
    await sleep(1100);
    const xact1 = await xactCommit(pool);
    const wal1 = await walStats(pool);
    const { rows } = await pool.query(
      "select count(*) filter (where status <> 'COMPLETED')::int as failed from throughline.run where labels @> $1::jsonb",
      [JSON.stringify({ bench: label })]);
    const seconds = (ended.lastEnded.getTime() - t0.getTime()) / 1000;
    return {
      runs,
      seconds,
      runsPerSec: runs / seconds,
      stepsPerSec: (runs * stepsPerRun) / seconds,
      failed: rows[0].failed,
      pgCpuMsPerRun: (pgCpu1 - pgCpu0) / runs,
      workerCpuMsPerRun: (workerCpu1 - workerCpu0) / runs,
      // Not ours to count: the status reads (C: one transaction each, on every interface; the API
      // key check is cached by the server) and our completion polls, one transaction each; the 2
      // statements around them (clock_timestamp, the failed count) are within noise.
      xactPerRun: (xact1 - xact0 - Object.values(reads).reduce((n, l) => n + l.length, 0) - ended.polls) / runs,
      walKbPerRun: (wal1.bytes - wal0.bytes) / 1024 / runs,
      walFpiPerRun: (wal1.fpi - wal0.fpi) / runs,
      reads,
      readErrors,
      cpuMsPerRun,
    };
  } finally {
    burstDone = true;
    void enqueuing;
    await reader.catch(() => {});
  }
}

export interface LatencyResult {
  /** Client-observed: start_run issued → RUN_ENDED seen (LISTEN "throughline:events" + run read), ms. */
  e2e: number[];
  /** start_run round trip (its transaction including the commit), ms. */
  submit: number[];
  /** Per step, server clock: step ready (enqueued) → attempt started (begin_step). */
  enqueueToStart: number[];
  /** Per step: attempt started → complete_step (includes begin_step commit, the task, the Node round trip). */
  startToComplete: number[];
  /** Per dependent step: last dependency completed → this step's attempt started. */
  completeToNextStart: number[];
  /** Per run: last complete_step (run ended, server clock) → seen by the client. */
  endToObserved: number[];
}

/** B: `count` runs one after another on an otherwise idle system. */
export async function latency(opts: { pool: pg.Pool; count: number; label: string; pollMs?: number }): Promise<LatencyResult> {
  const { pool, count, label } = opts;
  const url = (pool.options as { connectionString: string }).connectionString;
  const listener = new pg.Client({ connectionString: url });
  const submitter = new pg.Client({ connectionString: url });
  const checker = new pg.Client({ connectionString: url });
  await Promise.all([listener.connect(), submitter.connect(), checker.connect()]);
  await listener.query('listen "throughline:events"');
  let wake: (() => void) | undefined;
  listener.on("notification", () => wake?.());
  const result: LatencyResult = { e2e: [], submit: [], enqueueToStart: [], startToComplete: [], completeToNextStart: [], endToObserved: [] };
  const tokens: string[] = [];
  const observedAt = new Map<string, number>();
  try {
    for (let i = 0; i < count; i++) {
      await sleep(20); // idle between runs
      let pending = true; // a notification that arrives while we read counts as a new one
      wake = () => (pending = true);
      const t0 = performance.now();
      const { rows } = await submitter.query({
        name: "start", text: "select (throughline.start_run($1, '{}'::jsonb, labels => $2::jsonb)).token", values: [workflow, JSON.stringify({ bench: label })],
      });
      const t1 = performance.now();
      const token: string = rows[0].token;
      for (;;) {
        if (!pending) await new Promise<void>((resolve) => { wake = () => { pending = true; resolve(); }; setTimeout(resolve, opts.pollMs ?? 1000); });
        pending = false;
        const r = await checker.query({ name: "ended", text: "select status <> 'PENDING' as ended from throughline.run where token = $1", values: [token] });
        if (r.rows[0].ended) break;
      }
      const t2 = performance.now();
      observedAt.set(token, Date.now());
      result.submit.push(t1 - t0);
      result.e2e.push(t2 - t0);
      tokens.push(token);
    }
  } finally {
    await Promise.all([listener.end(), submitter.end(), checker.end()]);
  }
  // Hops, from the rows the engine wrote (transaction timestamps, server clock).
  const { rows: steps } = await pool.query(
    `select s.token, s.step, s.depends_on, s.ready_at, a.started_at, a.ended_at, r.completed_at
     from throughline.step s join throughline.step_attempt a on a.step_id = s.id and a.attempt = s.attempt
     join throughline.run r on r.token = s.token
     where s.token = any ($1::uuid[])`, [tokens]);
  const byRun = new Map<string, typeof steps>();
  for (const s of steps) byRun.set(s.token, [...(byRun.get(s.token) ?? []), s]);
  const ms = (a: Date, b: Date) => b.getTime() - a.getTime();
  for (const [token, list] of byRun) {
    const byName = new Map(list.map((s) => [s.step as string, s]));
    for (const s of list) {
      result.enqueueToStart.push(ms(s.ready_at, s.started_at));
      result.startToComplete.push(ms(s.started_at, s.ended_at));
      if (s.depends_on.length > 0) {
        const lastDep = Math.max(...s.depends_on.map((d: string) => byName.get(d)!.ended_at.getTime()));
        result.completeToNextStart.push(s.started_at.getTime() - lastDep);
      }
    }
    result.endToObserved.push(observedAt.get(token)! - list[0].completed_at.getTime());
  }
  return result;
}

export function peakRssMb(pid: number): number {
  return statusKb(pid, "VmHWM") / 1024;
}

export const summary = (values: number[]) => ({ p50: percentile(values, 50), p99: percentile(values, 99), median: median(values), n: values.length });
