// Which Postgres to use: DATABASE_URL when set; otherwise an embedded one in THROUGHLINE_DATA_DIR,
// created on first use and stopped with us.
import pg from "pg";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { startLocalPostgres, type LocalPostgres } from "./postgres/localPostgres.ts";

export interface Database {
  url: string;
  /** Set when we started the server ourselves. */
  embedded?: LocalPostgres;
  close(): Promise<void>;
}

export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, close: async () => {} };
  const pgLog = log.child({ component: "postgres" });
  const embedded = await startLocalPostgres({
    dataDir: config.THROUGHLINE_DATA_DIR,
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
  log.info({ version: embedded.version, dataDir: config.THROUGHLINE_DATA_DIR, port: config.THROUGHLINE_PG_PORT }, "embedded Postgres started");
  return { url: embedded.urlFor("throughline"), embedded, close: () => embedded.stop() };
}
