// Starts the Postgres servers the suite runs against, and migrates a template database on each that
// every test file copies (CREATE DATABASE … TEMPLATE: milliseconds, no migration per file).
//
// - The newest supported major: the embedded PostgreSQL 18 (or THROUGHLINE_TEST_DATABASE_URL, an
//   external server whose user may create databases).
// - The oldest supported major, 15, when its binaries are on the machine (Debian:
//   /usr/lib/postgresql/15/bin; or THROUGHLINE_TEST_PG15_BIN). The SQL rule tests run on both.
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { makeTempDir, startLocalPostgres, type LocalPostgres } from "../src/postgres/localPostgres.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { migrateSettings } from "../src/db/migrateSettings.ts";
import { createLogger } from "../src/log.ts";
import { registerWorkflows } from "../src/workflows/definition.ts";
import { workflows } from "../src/workflows/index.ts";
import { testWorkflows } from "./fixtures/testWorkflows.ts";
import graphileMigrate from "graphile-migrate";

export interface TestServer {
  name: string;
  /** A URL on the server's maintenance database, as a user that may create databases. */
  adminUrl: string;
  major: number;
}

declare module "vitest" {
  export interface ProvidedContext {
    servers: TestServer[];
  }
}

export const templateDatabase = "tl_template";

async function prepareTemplate(adminUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${templateDatabase} with (force)`);
    await admin.query(`create database ${templateDatabase}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${templateDatabase}`;
  await prepareDatabase(url.toString());
}

/** Migrates a database as the suite needs it: committed migrations, sql/current, all workflows. */
export async function prepareDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? "warn");
  await migrateDatabase(url.toString(), log);
  // Work in progress in sql/current/ is tested too (graphile-migrate's "watch --once").
  await graphileMigrate.watch(migrateSettings({ connectionString: url.toString() }), true);
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
  await registerWorkflows(pool, [...workflows, ...testWorkflows], { timeoutSeconds: 3600, maxInputBytes: 1024 * 1024 });
  await pool.end();
  // Copying a template needs it to have no connections.
  const { releaseMigrationPools } = await import("../src/db/migrate.ts");
  releaseMigrationPools();
}

export default async function setup(project: TestProject) {
  const started: LocalPostgres[] = [];
  const dirs: string[] = [];
  const servers: TestServer[] = [];
  const fast = { fsync: "off", synchronous_commit: "off", full_page_writes: "off", max_connections: 300 };

  const newest = async (): Promise<TestServer> => {
    if (process.env.THROUGHLINE_TEST_DATABASE_URL) {
      const client = new pg.Client({ connectionString: process.env.THROUGHLINE_TEST_DATABASE_URL });
      await client.connect();
      const v = (await client.query("show server_version_num")).rows[0].server_version_num;
      await client.end();
      return { name: `PostgreSQL ${Math.floor(v / 10000)} (external)`, adminUrl: process.env.THROUGHLINE_TEST_DATABASE_URL, major: Math.floor(v / 10000) };
    }
    const dir = makeTempDir("tl-test-");
    dirs.push(dir);
    const server = await startLocalPostgres({ dataDir: path.join(dir, "data"), port: 56000 + (process.pid % 2000), settings: fast });
    started.push(server);
    return { name: `PostgreSQL ${server.version} (embedded)`, adminUrl: server.url, major: Number.parseInt(server.version, 10) };
  };

  const pg15Bin = process.env.THROUGHLINE_TEST_PG15_BIN ?? "/usr/lib/postgresql/15/bin";
  const oldest = async (): Promise<TestServer | undefined> => {
    if (!existsSync(path.join(pg15Bin, "postgres"))) {
      console.warn(`PostgreSQL 15 binaries not found in ${pg15Bin}: the SQL rule tests run on the newest server only.`);
      return undefined;
    }
    const dir = makeTempDir("tl-test15-");
    dirs.push(dir);
    const server = await startLocalPostgres({ dataDir: path.join(dir, "data"), port: 58000 + (process.pid % 2000), binDir: pg15Bin, settings: fast });
    started.push(server);
    return { name: `PostgreSQL ${server.version.split(" ")[0]}`, adminUrl: server.url, major: Number.parseInt(server.version, 10) };
  };

  try {
    const [a, b] = await Promise.all([newest(), oldest()]);
    servers.push(a);
    if (b) servers.push(b);
    for (const s of servers) await prepareTemplate(s.adminUrl);
  } catch (e) {
    await Promise.all(started.map((s) => s.stop()));
    throw e;
  }
  project.provide("servers", servers);

  return async () => {
    await Promise.all(started.map((s) => s.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
}
