// `npm run bench`: starts its own durable Postgres, migrates it, starts one worker process, measures
// A (throughput), B (latency), C (SQL status read under load) and F (cost), prints one table.
// Options: --runs N (A's burst, default 2000), --reps N (A and B repetitions, default 3),
// --latency-runs N (B, default 50), --concurrency N (worker, default 10), --pgbench-seconds N
// (default 10, 0 skips), --profile (pg_stat_statements: top statements of A),
// --worker-root DIR (spawn the worker from another checkout, e.g. a worktree with a change),
// --worker-env K=V (repeatable, extra worker environment), --json FILE (write all figures),
// --sql-experiment FILE (run this SQL in the bench database after migrating: try an engine change
// on the throwaway database without touching sql/), --budget-seconds N (default 240: A repeats
// up to --reps times but starts another repetition only if it should end within this budget),
// --latency-poll-ms N (B also polls the run this often, for engines that do not NOTIFY; default 1000).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { projectRoot } from "../src/config.ts";
import { startBenchPostgres } from "./lib/postgres.ts";
import { pgbenchUpdate, type PgbenchResult } from "./lib/pgbench.ts";
import { spawnWorker } from "./lib/worker.ts";
import { criticalPathSteps, latency, peakRssMb, statusReadSql, stepsPerRun, throughput, warmUp, type LatencyResult, type ThroughputResult } from "./lib/measure.ts";
import { median, percentile } from "./lib/stats.ts";
import { sampleWaits, topStatements, type StatementRow, type WaitSample } from "./lib/profile.ts";
import { renderTable, type Row } from "./lib/table.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "2000" },
    reps: { type: "string", default: "3" },
    "latency-runs": { type: "string", default: "50" },
    concurrency: { type: "string", default: "10" },
    "pgbench-seconds": { type: "string", default: "10" },
    profile: { type: "boolean", default: false },
    "worker-root": { type: "string" },
    "worker-env": { type: "string", multiple: true },
    json: { type: "string" },
    "sql-experiment": { type: "string" },
    "budget-seconds": { type: "string", default: "240" },
    "latency-poll-ms": { type: "string", default: "1000" },
  },
});
const runs = Number(values.runs);
const reps = Number(values.reps);
const latencyRuns = Number(values["latency-runs"]);
const concurrency = Number(values.concurrency);
const pgbenchSeconds = Number(values["pgbench-seconds"]);
const batch = 100;
const workerRoot = path.resolve(values["worker-root"] ?? projectRoot);
const workerEnv = Object.fromEntries((values["worker-env"] ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

const say = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const started = Date.now();

function machine() {
  const cpuModel = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  let gitRev = "";
  try {
    gitRev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: projectRoot, encoding: "utf8" }).trim();
  } catch { /* not a checkout */ }
  return { nproc: os.availableParallelism(), cpuModel, node: process.version, loadavg: os.loadavg().map((l) => l.toFixed(2)).join(" "), gitRev };
}

async function main() {
  const m = machine();
  say(`machine: ${m.nproc} cores, ${m.cpuModel}, Node ${m.node}, load ${m.loadavg}`);
  const db = await startBenchPostgres({ statements: values.profile });
  say(`Postgres ${db.server.version} on port ${db.port} (durable: fsync, synchronous_commit on), migrated`);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  if (values["sql-experiment"]) {
    await pool.query(readFileSync(values["sql-experiment"], "utf8"));
    say(`applied ${values["sql-experiment"]}`);
  }
  const worker = spawnWorker({ databaseUrl: db.url, root: workerRoot, concurrency, extraEnv: workerEnv });
  // Ctrl-C: stop what we started (the worker, then Postgres and its data directory), then exit.
  process.once("SIGINT", () => {
    say("interrupted: stopping the worker and Postgres");
    void worker.stop().then(() => db.stop()).finally(() => process.exit(130));
  });
  const results: {
    pgbench?: PgbenchResult; a: ThroughputResult[]; b: LatencyResult[]; rssMb?: number; statements?: StatementRow[]; statementsB?: StatementRow[]; waits?: { samples: number; top: WaitSample[] };
  } = { a: [], b: [] };
  try {
    await Promise.race([warmUp(pool, 20), worker.exited]);
    say(`worker pid ${worker.pid} (${workerRoot === projectRoot ? "this checkout" : workerRoot}) warmed up`);

    if (pgbenchSeconds > 0) {
      say(`pgbench: single-row UPDATE, 10 clients, ${pgbenchSeconds} s`);
      results.pgbench = await pgbenchUpdate({ port: db.port, adminUrl: db.server.url, pgPid: db.server.pid, seconds: pgbenchSeconds });
      if (!results.pgbench) say("pgbench not found: the ratio to the commit ceiling is left out");
    }

    if (values.profile) await pool.query("select pg_stat_statements_reset()");
    for (let i = 0; i < (latencyRuns > 0 ? reps : 0); i++) {
      say(`B ${i + 1}/${reps}: ${latencyRuns} runs one at a time`);
      results.b.push(await latency({ pool, count: latencyRuns, label: `B${i}`, pollMs: Number(values["latency-poll-ms"]) }));
    }

    if (values.profile) {
      results.statementsB = await topStatements(pool, latencyRuns * reps, 20);
      await pool.query("select pg_stat_statements_reset()");
    }
    const sampler = values.profile ? sampleWaits(db.server.url, db.database) : undefined;
    const budget = Number(values["budget-seconds"]) * 1000;
    for (let i = 0; i < reps; i++) {
      const last = results.a.at(-1);
      if (last && Date.now() - started + last.seconds * 1000 + 5000 > budget) {
        say(`A: no time for repetition ${i + 1} within --budget-seconds ${budget / 1000}`);
        break;
      }
      say(`A ${i + 1}/${reps}: ${runs} runs at once`);
      const r = await throughput({ pool, pgPid: db.server.pid, workerPid: worker.pid, runs, batch, label: `A${i}`,
        readers: [{ name: "SQL", read: async (token) => { await pool.query({ name: "status", text: statusReadSql, values: [token] }); } }] });
      say(`  ${r.runsPerSec.toFixed(1)} runs/s, ${r.stepsPerSec.toFixed(0)} steps/s, ${r.xactPerRun.toFixed(1)} xact/run`);
      results.a.push(r);
    }
    if (sampler) results.waits = await sampler.stop();
    if (values.profile) results.statements = await topStatements(pool, runs * reps);
    results.rssMb = peakRssMb(worker.pid);
  } catch (e) {
    say(`worker output:\n${worker.output()}`);
    throw e;
  } finally {
    await worker.stop();
    await pool.end();
    await db.stop();
  }

  // --- the table -----------------------------------------------------------------------------------
  const med = (f: (r: ThroughputResult) => number) => median(results.a.map(f));
  const bMed = (f: (r: LatencyResult) => number[], p: number) => median(results.b.map((r) => percentile(f(r), p)));
  const runsPerSec = med((r) => r.runsPerSec);
  const stepsPerSec = med((r) => r.stepsPerSec);
  const tps = results.pgbench?.tps;
  const reads = results.a.flatMap((r) => r.reads.SQL ?? []);
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "n/a");
  const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
  const e2e50 = bMed((r) => r.e2e, 50);
  const e2e99 = bMed((r) => r.e2e, 99);
  const hop = (f: (r: LatencyResult) => number[]) => `${f1(bMed(f, 50))} / ${f1(bMed(f, 99))}`;
  const rows: Row[] = [
    ["A", `throughput, runs/s (${runs} runs, median of ${results.a.length})`, f1(runsPerSec), "≥ 300", verdict(runsPerSec >= 300),
      `${(runsPerSec / 95).toFixed(1)}× best peer (79–95); reps ${results.a.map((r) => f0(r.runsPerSec)).join(", ")}`],
    ["A", "throughput, steps/s", f0(stepsPerSec), "≥ 1,800", verdict(stepsPerSec >= 1800), `${stepsPerRun} steps/run; peers 474–570`],
    ["A", "pgbench commits/s (1-row UPDATE, 10 clients)", tps ? f0(tps) : "n/a", "—", "info",
      results.pgbench ? `pgbench ${path.basename(path.dirname(path.dirname(results.pgbench.binary)))} binary, ${results.pgbench.seconds} s; anchors: ≈ 8,700` : pgbenchSeconds > 0 ? "pgbench not found" : "skipped"],
    ["A", "steps/s ÷ pgbench commits/s", tps ? `${((stepsPerSec / tps) * 100).toFixed(1)} %` : "n/a", "—", "info", "peers ≈ 6 %"],
    ["B", `end-to-end p50, ms (${latencyRuns} runs × ${reps})`, f1(e2e50), "≤ 10", verdict(e2e50 <= 10), `start_run issued → run end seen via LISTEN; ${criticalPathSteps} steps on the path; peers 15–55`],
    ["B", "end-to-end p99, ms", f1(e2e99), "≤ 30", verdict(e2e99 <= 30), "median of the per-repetition p99s"],
    ["B", "  start_run round trip p50 / p99, ms", hop((r) => r.submit), "—", "info", "its transaction incl. commit (fsync)"],
    ["B", "  hop enqueue → start p50 / p99, ms", hop((r) => r.enqueueToStart), "—", "info", "step ready_at → begin_step (server clock)"],
    ["B", "  hop start → complete p50 / p99, ms", hop((r) => r.startToComplete), "—", "info", "begin_step → complete_step, no-op body"],
    ["B", "  hop complete → next start p50 / p99, ms", hop((r) => r.completeToNextStart), "—", "info", "last dependency's complete_step → begin_step"],
    ["B", "  run end → seen by client p50 / p99, ms", hop((r) => r.endToObserved), "—", "info", "commit + NOTIFY + our read"],
    ["C", "SQL status read under A, p50 / p99, ms", reads.length ? `${f1(percentile(reads, 50))} / ${f1(percentile(reads, 99))}` : "n/a", "—", "info",
      `is_processing + steps of a random run, ${reads.length} reads during A`],
    ["C", "GraphQL / REST status read under load", "not measured yet", "—", "—", "server not built yet"],
    ["D", "500 WebSocket subscribers", "not measured yet", "—", "—", "server not built yet"],
    ["E", "1M retained steps + purge stall", "not measured yet", "—", "—", ""],
    ["F", "worker peak RSS, MB (VmHWM)", f0(results.rssMb ?? Number.NaN), "≤ 200", verdict((results.rssMb ?? Infinity) <= 200), "whole bench, one process"],
    ["F", "Postgres CPU per run, ms", f1(med((r) => r.pgCpuMsPerRun)), "—", "info", `${f1(med((r) => r.pgCpuMsPerRun) / stepsPerRun)} ms/step; peers ≈ 2 ms/step` +
      (results.pgbench ? `; pgbench: ${results.pgbench.pgCpuMsPerTx.toFixed(2)} ms/commit` : "")],
    ["F", "worker CPU per run, ms", f1(med((r) => r.workerCpuMsPerRun)), "—", "info", `${f1(med((r) => r.workerCpuMsPerRun) / stepsPerRun)} ms/step`],
    ["F", "transactions per run", f1(med((r) => r.xactPerRun)), "—", "info", `${f1(med((r) => r.xactPerRun) / stepsPerRun)} per step; peers ≈ 3 per step`],
  ];
  const failed = results.a.reduce((n, r) => n + r.failed, 0);
  process.stdout.write(`\nThroughline bench — ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, ${m.nproc} cores (${m.cpuModel}), ` +
    `Node ${m.node}, PostgreSQL ${db.server.version.split(" ")[0]} (durable), git ${m.gitRev}${workerRoot !== projectRoot ? `, worker from ${workerRoot}` : ""}` +
    `${Object.keys(workerEnv).length ? `, worker env ${JSON.stringify(workerEnv)}` : ""}` +
    `${values["sql-experiment"] ? `, SQL experiment ${values["sql-experiment"]}` : ""}\n` +
    `load average at start ${m.loadavg}; A: ${runs} runs enqueued in transactions of ${batch} start_run calls, one worker process, concurrency ${concurrency}\n\n`);
  process.stdout.write(renderTable(["", "figure", "measured", "goal", "", "notes"], rows) + "\n");
  if (failed > 0) process.stdout.write(`\nWARNING: ${failed} runs of A did not end COMPLETED\n`);
  if (results.statements) {
    process.stdout.write(`\npg_stat_statements over A (${runs * reps} runs; nested statements counted inside their callers too):\n`);
    process.stdout.write(renderTable(["top", "calls/run", "ms/run", "mean ms", "statement"], results.statements.map((s) => [
      s.toplevel ? "yes" : "", s.callsPerRun.toFixed(2), s.msPerRun.toFixed(2), s.meanMs.toFixed(3), s.query,
    ])) + "\n");
  }
  if (results.statementsB) {
    process.stdout.write(`\npg_stat_statements over B (${latencyRuns * reps} runs, one at a time; nested statements counted inside their callers too):\n`);
    process.stdout.write(renderTable(["top", "calls/run", "ms/run", "mean ms", "statement"], results.statementsB.map((s) => [
      s.toplevel ? "yes" : "", s.callsPerRun.toFixed(2), s.msPerRun.toFixed(2), s.meanMs.toFixed(3), s.query,
    ])) + "\n");
  }
  if (results.waits) {
    process.stdout.write(`\npg_stat_activity sampled every 10 ms during A (${results.waits.samples} samples; share = average number of backends in that state):\n`);
    process.stdout.write(renderTable(["backends", "state or wait | statement"], results.waits.top.map((w) => [w.share.toFixed(2), w.what])) + "\n");
  }
  process.stdout.write(`\n(${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ machine: m, postgres: db.server.version, options: values, results, rows }, null, 2));
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e?.stack ?? e}\n`);
  process.exit(1);
});
