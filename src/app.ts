// Assembles a Throughline process: database (embedded or DATABASE_URL), migrations, workflow
// registration, and the worker and/or the HTTP server (GraphQL + REST). Stops them in reverse order.
import path from "node:path";
import { pathToFileURL } from "node:url";
import pg from "pg";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { openDatabase, type Database } from "./database.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { registerWorkflows, tasksOf, type WorkflowDefinition } from "./workflows/definition.ts";
import { workflows as shippedWorkflows } from "./workflows/index.ts";
import { startWorker, type ThroughlineWorker } from "./runtime/worker.ts";
import { startServer, type ThroughlineServer } from "../server/server.ts";

export interface AppOptions {
  config: Config;
  log: Logger;
  worker: boolean;
  migrate: boolean;
  /** Serve GraphQL (and the REST routes) on HOST:PORT. */
  server?: boolean;
  workflows?: WorkflowDefinition[];
}

export interface App {
  db: Database;
  pool: pg.Pool;
  worker?: ThroughlineWorker;
  server?: ThroughlineServer;
  stop(): Promise<void>;
}

/** The shipped workflows plus those of the modules named in THROUGHLINE_WORKFLOWS. */
export async function loadWorkflows(config: Config): Promise<WorkflowDefinition[]> {
  const all = [...shippedWorkflows];
  for (const modulePath of (config.THROUGHLINE_WORKFLOWS ?? "").split(",").map((p) => p.trim()).filter(Boolean)) {
    const mod = (await import(pathToFileURL(path.resolve(modulePath)).href)) as { workflows?: WorkflowDefinition[] };
    if (!Array.isArray(mod.workflows)) throw new Error(`${modulePath} (THROUGHLINE_WORKFLOWS) exports no \`workflows\` array`);
    all.push(...mod.workflows);
  }
  return all;
}

export async function startApp(options: AppOptions): Promise<App> {
  const { config, log } = options;
  const workflows = options.workflows ?? (await loadWorkflows(config));
  const db = await openDatabase(config, log);
  const stack: (() => Promise<void>)[] = [() => db.close()];
  const stop = async () => {
    while (stack.length) await stack.pop()!().catch((err) => log.error({ err }, "error during shutdown"));
  };
  try {
    if (options.migrate) {
      await migrateDatabase(db.url, log);
      log.info("database schema up to date");
    }
    const pool = new pg.Pool({ connectionString: db.url, max: config.THROUGHLINE_WORKER_CONCURRENCY + 5 });
    pool.on("error", (err) => log.warn({ err }, "idle database connection lost"));
    pool.on("connect", (client) => client.on("error", (err) => log.warn({ err }, "database connection lost")));
    stack.push(() => pool.end());
    await registerWorkflows(pool, workflows, {
      timeoutSeconds: config.THROUGHLINE_STEP_TIMEOUT_MINUTES * 60,
      maxInputBytes: config.THROUGHLINE_MAX_INPUT_BYTES,
    });
    let worker: ThroughlineWorker | undefined;
    if (options.worker) {
      worker = await startWorker({ pool, config, tasks: tasksOf(workflows), log });
      stack.push(() => worker!.stop());
    }
    let server: ThroughlineServer | undefined;
    if (options.server) {
      // Stopped before the worker and the pool: open subscriptions end first (clients resume with
      // their cursor elsewhere), then no request can reach a closed pool.
      server = await startServer({
        connectionString: db.url,
        pool,
        log,
        port: config.PORT,
        host: config.HOST,
        maxInputBytes: config.THROUGHLINE_MAX_INPUT_BYTES,
        authMode: config.THROUGHLINE_AUTH,
      });
      stack.push(() => server!.close());
    }
    return { db, pool, worker, server, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
