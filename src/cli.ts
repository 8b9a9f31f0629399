// The `throughline` command. See README.md ("Commands") for every command and its exit codes.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { z } from "zod";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { createLogger, type Logger } from "./log.ts";
import { installConnectionLossGuard } from "./runtime/connectionLossGuard.ts";
import { startApp, type App } from "./app.ts";
import { openDatabase } from "./database.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { ThroughlineError } from "./db/errors.ts";
import { createApiKey, listApiKeys, revokeApiKey } from "./db/apiKeys.ts";
import { createWebhook, deleteWebhook, listWebhooks, setWebhookEnabled, webhookDeliveries } from "./db/webhooks.ts";
import { createAuthenticator } from "./auth.ts";
import { ciMain, ciUsage, defaultIo } from "./ciCommands.ts";

const usage = `Usage: throughline <command> [options]

Commands:
  start                 migrate, then run the worker and the server (embedded Postgres when DATABASE_URL is unset)
  migrate               bring the database schema up to date and exit
  worker                run the worker only (several may run against one database)
  serve                 run the server only: GraphQL at /graphql (explorer at /graphiql) and the REST routes
  keys create --name N --role reader|submitter|admin [--subject S ...] [--expires ISO-TIME]
                        create an API key (printed once); keys list; keys revoke <id>
  webhooks create --url U --event E [--event E ...] [--workflow W] [--subject S] [--timeout SECONDS]
           [--max-attempts N] [--secret S] [--description D]
                        create a webhook (events: RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED, STEP_FAILED);
                        prints its id and signing secret (shown once)
  webhooks list | deliveries <id> [--state PENDING|DELIVERED|FAILED] [--limit N] | enable <id> |
           disable <id> | delete <id>
  submit | status | wait   for CI pipelines, see below

${ciUsage}

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

/**
 * Local development: with the embedded Postgres, `start` keeps an admin API key in a git-ignored
 * file beside its data, and the CI commands of this checkout use it when THROUGHLINE_API_KEY is unset.
 */
function localKeyFile(config: Config): string {
  return path.join(path.dirname(config.THROUGHLINE_DATA_DIR), "api-key");
}

async function ensureLocalKey(app: App, config: Config, log: Logger): Promise<string | undefined> {
  if (!app.db.embedded || config.THROUGHLINE_AUTH !== "keys") return undefined;
  const file = localKeyFile(config);
  if (existsSync(file)) {
    const key = readFileSync(file, "utf8").trim();
    if ((await createAuthenticator(app.pool, { mode: "keys", cacheMs: 0 }).authenticate(key)).ok) return file;
  }
  const { apiKey } = await createApiKey(app.pool, { name: "local development (throughline start)", role: "admin" });
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, apiKey + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
  log.info({ file }, "created an admin API key for local development");
  return file;
}

async function start(config: Config, log: Logger, withWorker: boolean, migrate: boolean, withServer = false) {
  const started = Date.now();
  const signals = handleSignals(log);
  const starting = startApp({ config, log, worker: withWorker, migrate, server: withServer });
  const app = await starting;
  const keyFile = withServer ? await ensureLocalKey(app, config, log) : undefined;
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
      (keyFile ? `  API key:    ${keyFile} (admin, local development; send it as X-Api-Key)\n` : "") +
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

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "submit" || argv[0] === "status" || argv[0] === "wait") {
    // CI commands talk HTTP to a running server (THROUGHLINE_URL); locally, with the key `start` made.
    const env = { ...process.env };
    if (!env.THROUGHLINE_API_KEY && process.env.THROUGHLINE_AUTH !== "open") {
      const file = localKeyFile(loadConfig());
      if (existsSync(file)) env.THROUGHLINE_API_KEY = readFileSync(file, "utf8").trim();
    }
    return ciMain(argv, { ...defaultIo(), env });
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      role: { type: "string" },
      subject: { type: "string", multiple: true },
      expires: { type: "string" },
      url: { type: "string" },
      event: { type: "string", multiple: true },
      workflow: { type: "string" },
      secret: { type: "string" },
      description: { type: "string" },
      timeout: { type: "string" },
      "max-attempts": { type: "string" },
      state: { type: "string" },
      limit: { type: "string" },
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
  const log = createLogger(config.LOG_LEVEL, ["start", "serve", "worker"].includes(command) ? "stdout" : "stderr");

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
    case "keys": {
      const [action, id] = rest;
      return withPool(config, log, async (pool) => {
        if (action === "create") {
          if (!values.name || !values.role) throw new ThroughlineError("invalid", "CLI", "keys create needs --name and --role (reader, submitter or admin)");
          const key = await createApiKey(pool, { name: values.name, role: values.role, subjects: values.subject ?? null, expiresAt: values.expires ?? null });
          process.stdout.write(values.json ? JSON.stringify(key) + "\n" : `${key.apiKey}\n`);
          if (!values.json) process.stderr.write(`key ${key.id} created; this is the only time it is shown.\n`);
          return 0;
        }
        if (action === "list") {
          const keys = await listApiKeys(pool);
          if (values.json) process.stdout.write(JSON.stringify(keys) + "\n");
          else for (const k of keys) {
            process.stdout.write(`${k.id}  ${k.key_prefix}…  ${k.role.padEnd(9)} ${(k.subjects?.join(",") ?? "all subjects").padEnd(20)} ${k.name}${k.revoked_at ? "  (revoked)" : ""}\n`);
          }
          return 0;
        }
        if (action === "revoke" && id) {
          const revoked = await revokeApiKey(pool, id);
          process.stdout.write(revoked ? `revoked ${id}\n` : `no active key ${id}\n`);
          return revoked ? 0 : 4;
        }
        throw new ThroughlineError("invalid", "CLI", "use: keys create --name N --role R [--subject S] | keys list | keys revoke <id>");
      });
    }
    case "webhooks":
      return withPool(config, log, (pool) => webhooksCommand(pool, rest, values));
    default:
      process.stderr.write(`unknown command "${command}"\n\n${usage}\n`);
      return 2;
  }
}

const positiveNumber = (flag: string) => z.coerce.number({ error: `${flag} must be a number` }).positive(`${flag} must be more than 0`);
const webhookFlags = z.object({
  timeout: positiveNumber("--timeout").optional(),
  "max-attempts": positiveNumber("--max-attempts").int("--max-attempts must be a whole number").optional(),
  limit: positiveNumber("--limit").int("--limit must be a whole number").max(1000, "--limit is at most 1000").default(20),
  state: z.enum(["PENDING", "DELIVERED", "FAILED"], { error: "--state must be PENDING, DELIVERED or FAILED" }).optional(),
  subject: z.array(z.string()).max(1, "a webhook filters on one --subject at most").optional(),
});
const webhookId = (id: string | undefined, action: string) => {
  if (!id || !/^\d{1,18}$/.test(id)) throw new ThroughlineError("invalid", "CLI", `webhooks ${action} needs the webhook's id (a number, as webhooks list shows it)`);
  return id;
};

/** `throughline webhooks …`: exit 0, 2 for bad input (with the reason), 4 when the webhook does not exist. */
async function webhooksCommand(pool: pg.Pool, [action, id]: string[], values: Record<string, string | string[] | boolean | undefined>): Promise<number> {
  const parsed = webhookFlags.safeParse(values);
  if (!parsed.success) throw new ThroughlineError("invalid", "CLI", parsed.error.issues.map((i) => i.message).join("; "));
  const flags = parsed.data;
  const json = values.json === true;
  const out = (text: string) => process.stdout.write(text);
  switch (action) {
    case "create": {
      const events = values.event as string[] | undefined;
      if (typeof values.url !== "string" || !events?.length) {
        throw new ThroughlineError("invalid", "CLI", "webhooks create needs --url and at least one --event (RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED, STEP_FAILED)");
      }
      const created = await createWebhook(pool, {
        url: values.url, events, workflow: values.workflow as string | undefined, subject: flags.subject?.[0],
        secret: values.secret as string | undefined, description: values.description as string | undefined,
        timeoutSeconds: flags.timeout, maxAttempts: flags["max-attempts"],
      });
      if (json) out(JSON.stringify(created) + "\n");
      else {
        out(`${created.id}\n`);
        process.stderr.write(`webhook ${created.id} created. Signing secret (shown only now; verify X-Throughline-Signature with it):\n${created.secret}\n`);
      }
      return 0;
    }
    case "list": {
      const hooks = await listWebhooks(pool);
      if (json) out(JSON.stringify(hooks) + "\n");
      else for (const w of hooks) {
        const filters = [w.workflow && `workflow=${w.workflow}`, w.subject && `subject=${w.subject}`].filter(Boolean).join(" ") || "all runs";
        out(`${w.id}  ${w.enabled ? "enabled " : "disabled"}  ${w.url}  ${w.events.join(",")}  ${filters}  pending ${w.pending}, failed ${w.failed}\n`);
      }
      return 0;
    }
    case "deliveries": {
      const rows = await webhookDeliveries(pool, webhookId(id, action), { state: flags.state, limit: flags.limit });
      if (json) out(JSON.stringify(rows) + "\n");
      else for (const d of rows) {
        const last = d.lastError ? `  ${d.lastStatusCode ?? "-"} ${d.lastError}` : d.lastStatusCode ? `  ${d.lastStatusCode}` : "";
        out(`${d.id}  ${d.state.padEnd(9)} ${d.event.padEnd(13)} ${d.token}  attempts ${d.attempts}/${d.maxAttempts}${last}\n`);
      }
      return 0;
    }
    case "enable":
    case "disable": {
      const found = await setWebhookEnabled(pool, webhookId(id, action), action === "enable");
      out(found ? `webhook ${id} ${action}d\n` : `no webhook ${id}\n`);
      return found ? 0 : 4;
    }
    case "delete": {
      const deleted = await deleteWebhook(pool, webhookId(id, action));
      out(deleted ? `webhook ${id} deleted\n` : `no webhook ${id}\n`);
      return deleted ? 0 : 4;
    }
    default:
      throw new ThroughlineError("invalid", "CLI", "use: webhooks create --url U --event E … | list | deliveries <id> | enable <id> | disable <id> | delete <id>");
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
