// The `throughline` command. See README.md ("Commands") for every command and its exit codes.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { createLogger, type Logger } from "./log.ts";
import { installConnectionLossGuard } from "./runtime/connectionLossGuard.ts";
import { startApp, type App } from "./app.ts";
import { openDatabase } from "./database.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { ThroughlineError } from "./db/errors.ts";
import { getRunWithSteps, startRun } from "./db/runs.ts";

const usage = `Usage: throughline <command> [options]

Commands:
  start                 migrate, then run the worker and the server (embedded Postgres when DATABASE_URL is unset)
  migrate               bring the database schema up to date and exit
  worker                run the worker only (several may run against one database)
  serve                 run the server only: GraphQL at /graphql (explorer at /graphiql) and the REST routes
  submit                start a run:  --workflow NAME (--input FILE | --input-json JSON)
                                      or for bom_upload: --project ID --bom FILE
                        options: --token UUID, --subject S, --label key=value (repeatable), --json
  status <token>        print a run and its steps (--json for scripts)

Configuration is read from the environment; see README.md.`;

/**
 * Stops in order on SIGINT/SIGTERM; a second signal exits at once. Installed before start-up, so a
 * signal that arrives while the app is still starting stops it as soon as it is up.
 */
function handleSignals(log: Logger): { stopWith(app: Promise<App>): Promise<void> } {
  let signalled: (signal: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting without waiting");
      process.exit(130);
    }
    stopping = true;
    signalled(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    async stopWith(appPromise) {
      const signal = await received;
      const app = await appPromise;
      log.info({ signal }, "shutting down");
      await app.stop();
      log.info("stopped");
    },
  };
}

function describeRuntime(log: Logger) {
  installConnectionLossGuard(log);
  log.info({ node: process.version, execPath: process.execPath }, process.execPath.includes("node_modules")
    ? "running on the Node.js runtime installed by npm from the `node` package (the system Node.js is older than 22.18)"
    : "running on the system Node.js");
}

async function start(config: Config, log: Logger, withWorker: boolean, migrate: boolean, withServer = false) {
  const started = Date.now();
  const signals = handleSignals(log);
  const starting = startApp({ config, log, worker: withWorker, migrate, server: withServer });
  const app = await starting;
  const where = {
    databaseUrl: app.db.url,
    follow: `psql ${app.db.url} -c 'select * from throughline.workflow_state order by id desc limit 20'`,
    submit: "npm run throughline -- submit --project demo --bom test/fixtures/bom-with-components.json",
  };
  log.info({ ...where, readyInMs: Date.now() - started }, "Throughline is ready");
  process.stdout.write(
    `\nThroughline is ready (${Date.now() - started} ms).\n` +
      `  Postgres:   ${app.db.url}${app.db.embedded ? ` (embedded PostgreSQL ${app.db.embedded.version})` : ""}\n` +
      `  Worker:     ${app.worker ? `${app.worker.workerId}, ${config.THROUGHLINE_WORKER_CONCURRENCY} concurrent steps` : "not started"}\n` +
      `  GraphQL:    ${app.server ? `${app.server.url}/graphql (explorer: ${app.server.url}/graphiql)` : "not started"}\n` +
      `  Follow:     ${where.follow}\n` +
      `  Submit:     ${where.submit}\n` +
      `  Stop:       Ctrl-C\n\n`,
  );
  await signals.stopWith(starting);
}

async function withPool<T>(config: Config, log: Logger, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const db = await openDatabase(config, log);
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await db.close();
  }
}

function parseLabels(values: string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf("=");
    if (i <= 0) throw new ThroughlineError("invalid", "CLI", `--label must be key=value, got "${v}"`);
    labels[v.slice(0, i)] = v.slice(i + 1);
  }
  return labels;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workflow: { type: "string" },
      input: { type: "string" },
      "input-json": { type: "string" },
      project: { type: "string" },
      bom: { type: "string" },
      token: { type: "string" },
      subject: { type: "string" },
      label: { type: "string", multiple: true },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(usage + "\n");
    return command || values.help ? 0 : 2;
  }
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);

  switch (command) {
    case "start":
      describeRuntime(log);
      await start(config, log, true, true, true);
      return 0;
    case "serve":
      describeRuntime(log);
      await start(config, log, false, false, true);
      return 0;
    case "worker":
      describeRuntime(log);
      await start(config, log, true, false);
      return 0;
    case "migrate":
      await withPool(config, log, async (pool) => {
        const url = (pool.options as { connectionString: string }).connectionString;
        await migrateDatabase(url, log);
      });
      log.info("database schema up to date");
      return 0;
    case "submit": {
      let input: Record<string, unknown>;
      let workflow = values.workflow;
      if (values.bom !== undefined || values.project !== undefined) {
        if (!values.bom || !values.project) throw new ThroughlineError("invalid", "CLI", "--project and --bom go together");
        workflow ??= "bom_upload";
        // The raw text: a malformed BOM is reported by BOM_CONSUMPTION with what is wrong and where.
        input = { project: values.project, bom: readFileSync(values.bom, "utf8") };
      } else if (values.input !== undefined || values["input-json"] !== undefined) {
        const text = values["input-json"] ?? readFileSync(values.input!, "utf8");
        try {
          input = JSON.parse(text);
        } catch (e) {
          throw new ThroughlineError("invalid", "CLI", `input is not valid JSON: ${(e as Error).message}`);
        }
      } else {
        throw new ThroughlineError("invalid", "CLI", "submit needs --project and --bom, or --workflow with --input or --input-json");
      }
      if (!workflow) throw new ThroughlineError("invalid", "CLI", "submit needs --workflow");
      const run = await withPool(config, log, (pool) =>
        startRun(pool, { workflow: workflow!, input, subject: values.subject, labels: parseLabels(values.label), token: values.token }));
      process.stdout.write(values.json ? JSON.stringify({ token: run.token }) + "\n" : `${run.token}\n`);
      return 0;
    }
    case "status": {
      const token = rest[0];
      if (!token) throw new ThroughlineError("invalid", "CLI", "status needs a token");
      const found = await withPool(config, log, (pool) => getRunWithSteps(pool, token));
      if (!found) {
        process.stderr.write(`Provided token ${token} does not exist.\n`);
        return 4;
      }
      if (values.json) {
        process.stdout.write(JSON.stringify(found) + "\n");
      } else {
        process.stdout.write(`${found.run.token}  ${found.run.workflow}  ${found.run.status}\n`);
        for (const s of found.steps) {
          process.stdout.write(`  ${s.step.padEnd(20)} ${s.status.padEnd(15)}${s.failure_reason ?? s.status_reason ?? ""}\n`);
        }
      }
      return 0;
    }
    default:
      process.stderr.write(`unknown command "${command}"\n\n${usage}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof ConfigError || err instanceof ThroughlineError) {
      process.stderr.write(`throughline: ${err.message}${err instanceof ThroughlineError && err.hint ? `\n  hint: ${err.hint}` : ""}\n`);
      process.exit(2);
    }
    process.stderr.write(`throughline: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
