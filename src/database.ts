// Which Postgres to use: DATABASE_URL when set; otherwise an embedded one in THROUGHLINE_DATA_DIR,
// created on first use and stopped with us.
import { mkdirSync } from "node:fs";
import pg from "pg";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { reachableByPostgres, startLocalPostgres, type LocalPostgres } from "./postgres/localPostgres.ts";

export interface Database {
  url: string;
  /** Set when we started the server ourselves. */
  embedded?: LocalPostgres;
  close(): Promise<void>;
}

export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, close: async () => {} };
  const pgLog = log.child({ component: "postgres" });
  const dataDir = embeddedDataDir(config.THROUGHLINE_DATA_DIR, log);
  const embedded = await startLocalPostgres({
    dataDir,
    port: config.THROUGHLINE_PG_PORT,
    binDir: config.THROUGHLINE_PG_BIN,
    onLog: (line) => pgLog.debug(line),
  });
  // The embedded cluster's own database for Throughline (the `postgres` one stays for admin).
  const admin = new pg.Client({ connectionString: embedded.url });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("select 1 from pg_database where datname = 'throughline'");
    if (!rowCount) await admin.query("create database throughline");
  } finally {
    await admin.end();
  }
  log.info({ version: embedded.version, dataDir, port: config.THROUGHLINE_PG_PORT }, "embedded Postgres started");
  return { url: embedded.urlFor("throughline"), embedded, close: () => embedded.stop() };
}

/**
 * As root, Postgres runs as the `postgres` user, which cannot enter a private directory (a checkout
 * under /root, say). Then the data lives in the shared temporary directory instead, one per data
 * directory asked for, and we say so.
 */
function embeddedDataDir(wanted: string, log: Logger): string {
  const parent = path.dirname(path.resolve(wanted));
  mkdirParents(parent);
  if (reachableByPostgres(parent)) return wanted;
  const fallback = path.join(os.tmpdir(), `throughline-data-${createHash("sha256").update(path.resolve(wanted)).digest("hex").slice(0, 12)}`, "pgdata");
  log.warn({ wanted, using: fallback }, "the postgres OS user cannot reach the data directory; using one in the temporary directory (set THROUGHLINE_DATA_DIR to choose)");
  return fallback;
}

function mkdirParents(dir: string) {
  try {
    mkdirSync(dir, { recursive: true });
  } catch {
    // reported by initdb if it matters
  }
}
