// One structured logger for every part of the runtime (pino). Children name their component.
import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Logs go to stdout for the long-running commands (start, serve, worker), where they are the output;
 * commands that print a result (keys, webhooks, migrate) log to stderr, so `--json` output stays
 * parseable.
 */
export function createLogger(level: string = process.env.LOG_LEVEL ?? "info", to: "stdout" | "stderr" = "stdout"): Logger {
  return pino({ level, base: { app: "throughline" } }, pino.destination(to === "stdout" ? 1 : 2));
}
