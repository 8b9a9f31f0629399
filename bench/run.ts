// `npm run bench`: starts its own durable Postgres, migrates it, starts one worker process and one API
// server process, measures A (throughput), B (latency), C (status reads under load: SQL, GraphQL,
// REST), D (500 WebSocket subscribers during A: each following one run, then each following all), E (1M retained steps: reads, purge and its stall)
// and F (cost), prints one table.
// Options: --runs N (A's burst, default 2000), --reps N (A and B repetitions, default 3),
// --latency-runs N (B, default 50), --concurrency N (worker, default 10), --pgbench-seconds N
// (default 10, 0 skips), --profile (pg_stat_statements: top statements of A),
// --worker-root DIR (spawn the worker from another checkout, e.g. a worktree with a change),
// --worker-env K=V (repeatable, extra worker environment), --json FILE (write all figures),
// --sql-experiment FILE (run this SQL in the bench database after migrating: try an engine change
// on the throwaway database without touching sql/), --budget-seconds N (default 330: A repeats
// up to --reps times but starts another repetition only if it should end within this budget),
// --latency-poll-ms N (B also polls the run this often, for engines that do not NOTIFY; default 1000),
// --subscribers N (D, default 500; 0 skips D), --retained-steps N (E, default 1000000; 0 skips E),
// --e-runs N (E: the burst during which C's reads are repeated, default 300), --purge-batch N (E,
// default 500 = THROUGHLINE_PURGE_BATCH_SIZE), --purge-seconds N (E: cap on the purge, default 30).
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
import { spawnServer } from "./lib/server.ts";
import { graphqlReader, restReader, sqlReader, type StatusReader } from "./lib/reads.ts";
import { deliveryLatencies, observeCommits, startSubscribers, type SubscriberSamples } from "./lib/subscribers.ts";
import { addRetainedRuns, probeRuns, purge, type Probe, type PurgeResult, type RetainedResult } from "./lib/retained.ts";
import { createApiKey } from "../src/db/apiKeys.ts";
import { cpuMs } from "./lib/proc.ts";
import { performance } from "node:perf_hooks";
import { criticalPathSteps, latency, peakRssMb, stepsPerRun, throughput, warmUp, type LatencyResult, type ThroughputResult } from "./lib/measure.ts";
import { median, percentile, sleep } from "./lib/stats.ts";
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
    "budget-seconds": { type: "string", default: "330" },
    "latency-poll-ms": { type: "string", default: "1000" },
    subscribers: { type: "string", default: "500" },
    "retained-steps": { type: "string", default: "1000000" },
    "e-runs": { type: "string", default: "300" },
    "purge-batch": { type: "string", default: "500" },
    "purge-seconds": { type: "string", default: "30" },
  },
});
const runs = Number(values.runs);
const reps = Number(values.reps);
const latencyRuns = Number(values["latency-runs"]);
const concurrency = Number(values.concurrency);
const pgbenchSeconds = Number(values["pgbench-seconds"]);
const batch = 100;
const subscriberCount = Number(values.subscribers);
const retainedSteps = Number(values["retained-steps"]);
const eRuns = Number(values["e-runs"]);
const purgeBatch = Number(values["purge-batch"]);
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
  let server: Awaited<ReturnType<typeof spawnServer>> | undefined;
  let subscriberKill: (() => void) | undefined;
  // Ctrl-C: stop what we started (subscribers, server, worker, then Postgres and its data directory), then exit.
  process.once("SIGINT", () => {
    say("interrupted: stopping the worker, the server and Postgres");
    subscriberKill?.();
    void Promise.all([worker.stop(), server?.stop()]).then(() => db.stop()).finally(() => process.exit(130));
  });
  type AResult = Awaited<ReturnType<typeof throughput>>;
  type DResult = { run: AResult; neighbours: number[]; committed: number; latency: { commit: number[]; at: number[]; unmatched: number }; samples: Omit<SubscriberSamples, "seqs" | "received" | "ats">; subscribeSeconds: number };
  const results: {
    pgbench?: PgbenchResult; a: AResult[]; b: LatencyResult[]; rssMb?: number; statements?: StatementRow[]; statementsB?: StatementRow[]; waits?: { samples: number; top: WaitSample[] };
    /** D with each subscriber following all runs (after A's 1st repetition), and following one run each (after the 2nd). */
    d?: DResult;
    dPerRun?: DResult;
    e?: { retained: RetainedResult; reads: AResult; purge: PurgeResult; before: Probe[]; during: Probe[]; open: number; tables: Record<string, string> };
  } = { a: [], b: [] };
  const readers: StatusReader[] = [];
  const idleReads: Record<string, number[]> = {};
  try {
    server = await spawnServer({ databaseUrl: db.url, root: workerRoot });
    const { apiKey } = await createApiKey(pool, { name: "bench reader", role: "reader" });
    say(`server pid ${server.pid} at ${server.url}`);
    readers.push(await sqlReader(db.url), graphqlReader(server.url, apiKey), restReader(server.url, apiKey));
    await warmUp(pool, 20);
    // First requests compile plans and prepare statements: not what C measures.
    const { rows: [warm] } = await pool.query("select token::text from throughline.run order by created_at limit 1");
    for (let i = 0; i < 5; i++) for (const r of readers) await r.read(warm.token);
    // The same reads on the idle system (after the warm-up), for C's notes: what load adds.
    for (let i = 0; i < 50; i++) for (const r of readers) {
      const t = performance.now();
      await r.read(warm.token);
      (idleReads[r.name] ??= []).push(performance.now() - t);
      await sleep(10);
    }
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
    const cpuOf = { server: server.pid };
    // D runs right after A's first repetition (subscribers following all runs) and second (each
    // following one run), so that each has a repetition without subscribers on either side (the
    // ratio uses their mean: the machine's load drifts over minutes).
    const runD = async (mode: "all" | "per-run"): Promise<DResult> => {
      say(mode === "all"
        ? `D: ${subscriberCount} WebSocket subscribers, each following all runs (runsChanges, one load process), then ${runs} runs at once`
        : `D: ${subscriberCount} WebSocket subscribers, each following one run of the ${runs} (runChanges(token), one load process)`);
      const wsUrl = `${server!.url.replace(/^http/, "ws")}/graphql`;
      const s0 = performance.now();
      const load = await startSubscribers({ wsUrl, apiKey, count: subscriberCount, workflow: "test_dag", mode });
      subscriberKill = load.kill;
      const subscribeSeconds = (performance.now() - s0) / 1000;
      const observer = await observeCommits(db.url);
      // per-run: every k-th run of the burst is followed, as soon as its batch is committed.
      const every = Math.max(1, Math.floor(runs / subscriberCount));
      let enqueued = 0;
      const onEnqueued = mode === "per-run" ? (tokens: string[]) => load.follow(tokens.filter(() => enqueued++ % every === 0)) : undefined;
      let run: AResult;
      let samples: SubscriberSamples;
      try {
        run = await throughput({ pool, pgPid: db.server.pid, workerPid: worker.pid, runs, batch, label: mode === "all" ? "D" : "Dr", cpuOf: { ...cpuOf, subscribers: load.pid }, onEnqueued });
        await sleep(1000); // the last transitions reach the clients
      } finally {
        samples = await load.stop();
        subscriberKill = undefined;
        await observer.stop();
      }
      const lat = deliveryLatencies(samples, observer.firstSeen);
      if (samples.errorSamples.length) say(`  errors, first ones: ${[...new Set(samples.errorSamples)].join(" | ")}`);
      for (const u of samples.unended ?? []) say(`  run ${u.token}: its end did not reach its subscriber (state ${u.state ?? "none"}, then ${u.kinds.join(" ") || "nothing"}${u.completed ? "; the server completed the subscription" : ""}${u.error ? `; error ${u.error}` : ""})`);
      say(`  ${run.runsPerSec.toFixed(1)} runs/s with subscribers; delivery p50 ${percentile(lat.commit, 50).toFixed(1)} / p99 ${percentile(lat.commit, 99).toFixed(1)} ms ` +
        `(${lat.commit.length} samples, ${samples.events} events, ${samples.errors} errors${mode === "per-run" ? `, ${samples.endsSeen} of ${samples.followed} run ends seen` : ""})`);
      const { seqs: _s, received: _r, ats: _a, ...meta } = samples;
      return { run, neighbours: [], committed: observer.firstSeen.size, latency: lat, samples: meta, subscribeSeconds };
    };
    for (let i = 0; i < reps; i++) {
      const last = results.a.at(-1);
      if (last && Date.now() - started + last.seconds * 1000 + 5000 > budget) {
        say(`A: no time for repetition ${i + 1} within --budget-seconds ${budget / 1000}`);
        break;
      }
      say(`A ${i + 1}/${reps}: ${runs} runs at once`);
      const r = await throughput({ pool, pgPid: db.server.pid, workerPid: worker.pid, runs, batch, label: `A${i}`, readers, cpuOf });
      say(`  ${r.runsPerSec.toFixed(1)} runs/s, ${r.stepsPerSec.toFixed(0)} steps/s, ${r.xactPerRun.toFixed(1)} xact/run, ${r.walKbPerRun.toFixed(1)} kB WAL/run`);
      results.a.push(r);
      if (i === 0 && subscriberCount > 0) results.d = await runD("all");
      if (i === 1 && subscriberCount > 0) results.dPerRun = await runD("per-run");
    }
    if (results.d) results.d.neighbours = results.a.slice(0, 2).map((r) => r.runsPerSec);
    if (results.dPerRun) results.dPerRun.neighbours = results.a.slice(1, 3).map((r) => r.runsPerSec);
    if (sampler) results.waits = await sampler.stop();
    if (values.profile) results.statements = await topStatements(pool, runs * reps);

    if (retainedSteps > 0) {
      say(`E: adding ${retainedSteps} retained steps (copies of an ended run, SQL, triggers off)`);
      const { rows: [tpl] } = await pool.query("select token::text from throughline.run where labels @> '{\"bench\":\"A0\"}' and status = 'COMPLETED' limit 1");
      const retained = await addRetainedRuns(db.url, tpl.token, retainedSteps, (m) => say(`  ${m}`));
      const { rows: [sizes] } = await pool.query(`select pg_size_pretty(pg_total_relation_size('throughline.step')) as step,
        pg_size_pretty(pg_total_relation_size('throughline.event')) as event, pg_size_pretty(pg_total_relation_size('throughline.run')) as run,
        pg_size_pretty(pg_total_relation_size('throughline.step_attempt')) as step_attempt`);
      say(`  ${retained.runs} runs, ${retained.steps} steps, ${retained.events} events, ${retained.attempts} attempts in ${retained.seconds.toFixed(0)} s; sizes ${JSON.stringify(sizes)}`);
      say(`E: C's SQL and REST reads again, during a burst of ${eRuns} runs`);
      const eReads = await throughput({ pool, pgPid: db.server.pid, workerPid: worker.pid, runs: eRuns, batch, label: "E", readers: [readers[0], readers[2]], cpuOf });
      say(`  ${eReads.runsPerSec.toFixed(1)} runs/s; SQL p50 ${percentile(eReads.reads.SQL, 50).toFixed(1)}, REST p50 ${percentile(eReads.reads.REST, 50).toFixed(1)} ms`);
      say(`E: purge_runs in batches of ${purgeBatch} while a one-step run starts every 50 ms`);
      const probes = probeRuns(db.url, "test_single", 50);
      await sleep(5000);
      const p0 = performance.now();
      const purged = await purge(db.url, purgeBatch, Number(values["purge-seconds"]));
      const p1 = performance.now();
      const probed = await probes.stop();
      say(`  purged ${purged.deleted} runs in ${purged.seconds.toFixed(1)} s (${purged.batches} batches${purged.finished ? "" : ", stopped at the cap"}); ` +
        `probe max ${Math.max(...probed.probes.filter((p) => p.issuedAt >= p0 && p.issuedAt < p1).map((p) => p.e2e)).toFixed(0)} ms`);
      results.e = {
        retained, reads: eReads, purge: purged, open: probed.open, tables: sizes,
        before: probed.probes.filter((p) => p.issuedAt < p0 - 0), during: probed.probes.filter((p) => p.issuedAt >= p0 && p.issuedAt < p1),
      };
    }
    results.rssMb = peakRssMb(worker.pid);
  } catch (e) {
    say(`worker output:\n${worker.output()}`);
    if (server) say(`server output:\n${server.output()}`);
    throw e;
  } finally {
    subscriberKill?.();
    for (const r of readers) await r.close().catch(() => {});
    await server?.stop();
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
  const readsOf = (name: string) => results.a.flatMap((r) => r.reads[name] ?? []);
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "n/a");
  const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
  const e2e50 = bMed((r) => r.e2e, 50);
  const e2e99 = bMed((r) => r.e2e, 99);
  const hop = (f: (r: LatencyResult) => number[]) => `${f1(bMed(f, 50))} / ${f1(bMed(f, 99))}`;
  const pp = (l: number[]) => `${f1(percentile(l, 50))} / ${f1(percentile(l, 99))}`;
  const readErrors = (name: string, list: ThroughputResult[]) => list.reduce((n, r) => n + (r.readErrors[name] ?? 0), 0);
  function cRows(): Row[] {
    return ["SQL", "GraphQL", "REST"].map((name) => {
      const l = readsOf(name);
      const what = { SQL: "is_processing + steps as JSON, one statement", GraphQL: "run(token){status stepsOpen steps{nodes{step status}}}", REST: "GET /api/v1/workflow/token/{t}/status" }[name];
      const errs = readErrors(name, results.a);
      return ["C", `${name} status read under A, p50 / p99, ms`, l.length ? pp(l) : "n/a", "p99 ≤ 5", l.length ? verdict(percentile(l, 99) <= 5) : "—",
        `${l.length} reads; idle p50 / p99 ${pp(idleReads[name] ?? [])}; ${what}${errs ? `; ${errs} errors` : ""}`] as Row;
    }).concat([["C", "  readers", "1", "—", "info", "one loop, SQL → GraphQL → REST in turn, 10 ms pause, random started run of A"]]);
  }
  function dRows(): Row[] {
    if (!results.d && !results.dPerRun) return [["D", `${subscriberCount} WebSocket subscribers`, "skipped", "—", "—", "--subscribers 0"]];
    const rows: Row[] = [];
    const costRows = (d: DResult): Row[] => {
      const base = d.neighbours.length ? d.neighbours.reduce((a, b) => a + b, 0) / d.neighbours.length : Number.NaN;
      const cost = 1 - d.run.runsPerSec / base;
      return [
        ["D", "  A throughput with these subscribers, runs/s", f1(d.run.runsPerSec), "—", "info", `without (reps before/after): ${d.neighbours.map(f1).join(", ")}`],
        ["D", "  throughput cost of the subscribers", `${(cost * 100).toFixed(0)} %`, "≤ 10 %", verdict(cost <= 0.10), "1 − with ÷ mean(without)"],
        ["D", "  server / subscriber-process CPU per run, ms", `${f1(d.run.cpuMsPerRun.server)} / ${f1(d.run.cpuMsPerRun.subscribers)}`, "—", "info",
          `without subscribers: server ${f1(med((r) => r.cpuMsPerRun.server ?? Number.NaN))} ms/run; connect ${d.subscribeSeconds.toFixed(1)} s`],
      ];
    };
    const r = results.dPerRun;
    if (r) {
      const c99 = percentile(r.latency.commit, 99);
      rows.push(
        ["D", `each of ${r.samples.clients} subscribers following one run: delivery commit → client p50 / p99, ms`, pp(r.latency.commit), "p99 ≤ 100", verdict(c99 <= 100),
          `runChanges(token), as \`throughline wait\` does, on ${r.samples.clients} graphql-ws clients in 1 load process, every ${Math.max(1, Math.floor(runs / subscriberCount))}th run of A followed from its commit; ${r.latency.commit.length} deliveries timed; ${r.samples.errors} errors`],
        ["D", "  runs whose end reached their subscriber", `${r.samples.endsSeen} of ${r.samples.followed}`, "all", verdict(r.samples.followed > 0 && r.samples.endsSeen === r.samples.followed),
          "RUN_ENDED received, or the run had already ended in the state message; within 1 s of A's end"],
        ["D", "  receipt − event `at` p50 / p99, ms", pp(r.latency.at), "—", "info", "upper bound: `at` is the writing transaction's start"],
        ...costRows(r),
      );
    }
    const d = results.d;
    if (d) {
      const c99 = percentile(d.latency.commit, 99);
      rows.push(
        ["D", `each of ${d.samples.clients} subscribers following ALL runs: delivery p50 / p99, ms`, pp(d.latency.commit), "p99 ≤ 100", verdict(c99 <= 100),
          `runsChanges(workflow) on ${d.samples.clients} graphql-ws clients in 1 load process; ${d.latency.commit.length} sampled deliveries of ${d.samples.events} received; ${d.samples.errors} errors`],
        ["D", "  delivered within 1 s of A's end", `${f1((100 * d.samples.events) / (d.samples.clients * d.committed))} %`, "100 %", verdict(d.samples.events >= d.samples.clients * d.committed),
          `${d.samples.events} of ${d.samples.clients} × ${d.committed} committed events; ${d.samples.messages} messages; later ones are not in the p50/p99 above`],
        ["D", "  receipt − event `at` p50 / p99, ms", pp(d.latency.at), "—", "info", "upper bound: `at` is the writing transaction's start"],
        ...costRows(d),
      );
    }
    return rows;
  }
  function eRows(): Row[] {
    const e = results.e;
    if (!e) return [["E", "1M retained steps + purge stall", "skipped", "—", "—", "--retained-steps 0"]];
    const rows: Row[] = [["E", `retained: ${(e.retained.steps / 1e6).toFixed(2)} M steps, ${(e.retained.runs / 1e3).toFixed(0)} k runs`, `${f0(e.retained.seconds)} s`, "—", "info",
      `to insert, + ${f0(e.retained.settleSeconds)} s vacuum/analyze/checkpoint; ${(e.retained.events / 1e6).toFixed(2)} M events, ${(e.retained.attempts / 1e6).toFixed(2)} M attempts; step ${e.tables.step}, event ${e.tables.event}`]];
    for (const name of ["SQL", "REST"]) {
      const big = e.reads.reads[name] ?? [];
      const small = readsOf(name);
      const ratio = percentile(big, 50) / percentile(small, 50);
      rows.push(["E", `${name} status read, 1M steps, p50 / p99, ms`, pp(big), "p50 ≤ 1.2× C", verdict(ratio <= 1.2),
        `${ratio.toFixed(2)}× C's p50 (p99 ${(percentile(big, 99) / percentile(small, 99)).toFixed(2)}×); ${big.length} reads during ${e.reads.runs} runs`]);
    }
    const rate = e.purge.deleted / e.purge.seconds;
    rows.push(["E", `purge: ${e.purge.deleted} runs in batches of ${purgeBatch}`, `${f1(e.purge.seconds)} s`, "—", "info",
      `${f0(rate)} runs/s = ${f0(rate * stepsPerRun)} steps/s; batch p50 / max ${f0(percentile(e.purge.batchMs, 50))} / ${f0(Math.max(...e.purge.batchMs))} ms` +
      (e.purge.finished ? "" : `; stopped at the cap: all ${e.retained.runs} would take ≈ ${f0(e.retained.runs / rate)} s`)]);
    const during = e.during.map((p) => p.e2e);
    const before = e.before.map((p) => p.e2e);
    rows.push(["E", "  stall: max e2e of a 1-step run during the purge, ms", f0(Math.max(...during)), "≤ 200", verdict(Math.max(...during) <= 200),
      `one started every 50 ms: ${during.length} during (p50 ${f0(percentile(during, 50))}), ${before.length} before (p50 ${f0(percentile(before, 50))}, max ${f0(Math.max(...before))})` +
      (e.open ? `; ${e.open} never ended` : "")]);
    return rows;
  }
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
    ...cRows(),
    ...dRows(),
    ...eRows(),
    ["F", "worker peak RSS, MB (VmHWM)", f0(results.rssMb ?? Number.NaN), "≤ 200", verdict((results.rssMb ?? Infinity) <= 200), "whole bench, one process"],
    ["F", "Postgres CPU per run, ms", f1(med((r) => r.pgCpuMsPerRun)), "—", "info", `${f1(med((r) => r.pgCpuMsPerRun) / stepsPerRun)} ms/step; peers ≈ 2 ms/step` +
      (results.pgbench ? `; pgbench: ${results.pgbench.pgCpuMsPerTx.toFixed(2)} ms/commit` : "")],
    ["F", "worker CPU per run, ms", f1(med((r) => r.workerCpuMsPerRun)), "—", "info", `${f1(med((r) => r.workerCpuMsPerRun) / stepsPerRun)} ms/step`],
    ["F", "transactions per run", f1(med((r) => r.xactPerRun)), "—", "info", `${f1(med((r) => r.xactPerRun) / stepsPerRun)} per step; peers ≈ 3 per step`],
    ["F", "WAL per run, kB", f1(med((r) => r.walKbPerRun)), "—", "info", `${f1(med((r) => r.walKbPerRun) / stepsPerRun)} kB/step; ${f1(med((r) => r.walFpiPerRun))} full-page images/run (pg_stat_wal)`],
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
    process.stdout.write(renderTable(["top", "calls/run", "ms/run", "mean ms", "WAL kB/run", "FPI/run", "statement"], results.statements.map((s) => [
      s.toplevel ? "yes" : "", s.callsPerRun.toFixed(2), s.msPerRun.toFixed(2), s.meanMs.toFixed(3),
      (s.walBytesPerRun / 1024).toFixed(1), s.walFpiPerRun.toFixed(2), s.query,
    ])) + "\n");
  }
  if (results.statementsB) {
    process.stdout.write(`\npg_stat_statements over B (${latencyRuns * reps} runs, one at a time; nested statements counted inside their callers too):\n`);
    process.stdout.write(renderTable(["top", "calls/run", "ms/run", "mean ms", "WAL kB/run", "FPI/run", "statement"], results.statementsB.map((s) => [
      s.toplevel ? "yes" : "", s.callsPerRun.toFixed(2), s.msPerRun.toFixed(2), s.meanMs.toFixed(3),
      (s.walBytesPerRun / 1024).toFixed(1), s.walFpiPerRun.toFixed(2), s.query,
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
