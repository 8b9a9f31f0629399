// The database's own commit ceiling on this machine: pgbench, single-row UPDATE per transaction,
// 10 clients, against the same server the bench uses (its own small database, scale 1).
import { execFile } from "node:child_process";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { embeddedBinDir } from "../../src/postgres/localPostgres.ts";
import { treeCpuMs } from "./proc.ts";

const run = promisify(execFile);

/** pgbench from the embedded binaries if they have it, else any /usr/lib/postgresql/<major>/bin. */
export async function findPgbench(): Promise<string | undefined> {
  const candidates = [path.join(await embeddedBinDir(), "pgbench")];
  if (existsSync("/usr/lib/postgresql")) {
    for (const major of readdirSync("/usr/lib/postgresql").sort().reverse()) candidates.push(`/usr/lib/postgresql/${major}/bin/pgbench`);
  }
  return candidates.find((p) => existsSync(p));
}

export interface PgbenchResult {
  binary: string;
  tps: number;
  clients: number;
  seconds: number;
  latencyMs: number;
  /** Postgres CPU (all its processes) per pgbench transaction, ms: the floor for one small commit. */
  pgCpuMsPerTx: number;
}

export async function pgbenchUpdate(opts: { port: number; adminUrl: string; pgPid: number; clients?: number; seconds?: number }): Promise<PgbenchResult | undefined> {
  const binary = await findPgbench();
  if (!binary) return undefined;
  const clients = opts.clients ?? 10;
  const seconds = opts.seconds ?? 10;
  const conn = ["-h", "127.0.0.1", "-p", String(opts.port), "-U", "postgres"];
  const env = { ...process.env, PGPASSWORD: "" };
  const pg = await import("pg");
  const admin = new pg.default.Client({ connectionString: opts.adminUrl });
  await admin.connect();
  await admin.query("drop database if exists pgbench");
  await admin.query("create database pgbench");
  await admin.end();
  await run(binary, ["-i", "-q", "-s", "1", ...conn, "pgbench"], { env });
  // One single-row UPDATE per transaction: the smallest durable write, i.e. the commit (WAL fsync) rate.
  const script = path.join(os.tmpdir(), `tl-bench-update-${process.pid}.sql`);
  writeFileSync(script, "\\set aid random(1, 100000)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n");
  const cpu0 = treeCpuMs(opts.pgPid);
  const { stdout } = await run(binary, ["-n", "-f", script, "-c", String(clients), "-j", "2", "-T", String(seconds), ...conn, "pgbench"], { env });
  const cpu1 = treeCpuMs(opts.pgPid);
  rmSync(script, { force: true });
  const transactions = Number(stdout.match(/number of transactions actually processed: (\d+)/)?.[1]);
  const tps = Number(stdout.match(/tps = ([\d.]+)/)?.[1]);
  const latencyMs = Number(stdout.match(/latency average = ([\d.]+) ms/)?.[1]);
  return { binary, tps, clients, seconds, latencyMs, pgCpuMsPerTx: (cpu1 - cpu0) / transactions };
}
