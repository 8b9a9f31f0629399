// Developer tasks for the SQL in sql/, each against a throwaway local Postgres:
//   node scripts/db.ts commit "message"  fold sql/current/ into a new committed migration
//   node scripts/db.ts uncommit          move the last committed migration back into sql/current/
//   node scripts/db.ts check             apply committed + current to a fresh database
// graphile-migrate needs a database and a shadow database for these; we make both here so a
// developer needs nothing running.
import { rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import graphileMigrate from "graphile-migrate";
import { migrateSettings } from "../src/db/migrateSettings.ts";
import { makeTempDir, startLocalPostgres } from "../src/postgres/localPostgres.ts";
import { runMigrations } from "graphile-worker";
import { releaseMigrationPools } from "../src/db/migrate.ts";

const [command, message] = process.argv.slice(2);
const dir = makeTempDir("tl-db-");
const server = await startLocalPostgres({ dataDir: path.join(dir, "data"), port: 55000 + (process.pid % 5000), binDir: process.env.THROUGHLINE_PG_BIN });
try {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query("create database tl_dev");
  await admin.query("create database tl_dev_shadow");
  await admin.end();
  const settings = migrateSettings({
    connectionString: server.urlFor("tl_dev"),
    shadowConnectionString: server.urlFor("tl_dev_shadow"),
    rootConnectionString: server.urlFor("postgres"),
  });
  const { commit, migrate, uncommit, watch } = graphileMigrate;
  await runMigrations({ connectionString: settings.connectionString });
  await migrate(settings);
  if (command === "commit") await commit(settings, message ?? null);
  else if (command === "uncommit") await uncommit(settings);
  else if (command === "check") await watch(settings, true);
  else throw new Error(`unknown command ${command}; use commit, uncommit or check`);
} finally {
  releaseMigrationPools();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
