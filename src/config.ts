// Configuration comes from the environment only, and is validated here once, at start: a bad value
// stops the process with a message naming the variable, what it got and what it wants.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** The project root (where package.json, .gmrc, sql/ and tasks/ are). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const seconds = (def: number) => z.coerce.number().positive().default(def);

const envSchema = z.object({
  DATABASE_URL: z.string().url().optional()
    .describe("Postgres to use. Unset: Throughline starts an embedded Postgres in THROUGHLINE_DATA_DIR."),
  PORT: z.coerce.number().int().min(0).max(65535).default(5678).describe("HTTP port of the GraphQL/REST server."),
  HOST: z.string().default("127.0.0.1").describe("Address the server listens on."),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  THROUGHLINE_DATA_DIR: z.string().default(path.join(projectRoot, ".throughline", "pgdata"))
    .describe("Data directory of the embedded Postgres."),
  THROUGHLINE_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329)
    .describe("Port of the embedded Postgres (127.0.0.1 only)."),
  THROUGHLINE_PG_BIN: z.string().optional()
    .describe("Directory with initdb and postgres to use instead of the embedded PostgreSQL 18 binaries."),
  THROUGHLINE_AUTH: z.enum(["keys", "open"]).default("keys")
    .describe("keys: every API request needs an API key. open: requests without a key act as admin (local development only)."),
  THROUGHLINE_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(10),
  THROUGHLINE_INLINE_CLAIMS: z.coerce.number().int().min(0).max(64).default(4)
    .describe("How many of the steps a finished step made runnable its worker takes on at once, in the same transaction (0: all go through Graphile Worker jobs)."),
  THROUGHLINE_LEASE_SECONDS: seconds(30)
    .describe("A step attempt whose worker stops heartbeating is retried after this long."),
  THROUGHLINE_RECLAIM_INTERVAL_SECONDS: seconds(5)
    .describe("How often each worker looks for attempts whose lease expired."),
  THROUGHLINE_STEP_TIMEOUT_MINUTES: seconds(60)
    .describe("Default step timeout (hyades: 60 min); a step definition may set its own."),
  THROUGHLINE_RETENTION_HOURS: seconds(72).describe("Ended runs older than this are deleted (hyades: 72 h)."),
  THROUGHLINE_PURGE_BATCH_SIZE: z.coerce.number().int().min(1).max(100_000).default(200)
    .describe("Runs deleted per purge transaction: small batches keep each one short for running workers (bench E)."),
  THROUGHLINE_MAINTENANCE_CRON: z.string().default("*/15 * * * *")
    .describe("When timeouts and retention run (Graphile Worker crontab syntax; hyades: every 15 min)."),
  THROUGHLINE_WORKFLOWS: z.string().optional()
    .describe("Extra workflow modules (comma-separated paths; each exports `workflows`), registered and run beside the shipped ones."),
  THROUGHLINE_MAX_INPUT_BYTES: z.coerce.number().int().positive().default(10 * 1024 * 1024)
    .describe("Largest accepted run input (JSON text bytes)."),
});

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const key = String(i.path[0]);
      return `  ${key}=${JSON.stringify(env[key])}: ${i.message}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return result.data;
}
