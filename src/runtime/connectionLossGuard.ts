// Graphile Worker records job results in batches outside the task; when Postgres goes away at that
// moment (a restart, a failover) the rejection escapes as an unhandled one, and Node would end the
// worker process. A lost connection is not a reason to die: every step attempt is fenced and leased
// in our tables, so an attempt whose result could not be recorded is retried after its lease. Keep
// running on connection loss; anything else still ends the process (for a supervisor to restart).
import type { Logger } from "../log.ts";

const connectionLossCodes = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "08000", "08003", "08006", "08001", "08004", // connection exceptions
  "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT",
]);

export function isConnectionLoss(error: unknown, depth = 0): boolean {
  const e = error as { code?: string; message?: string; cause?: unknown } | undefined;
  if (e?.code && connectionLossCodes.has(e.code)) return true;
  if (/Connection terminated|Client has encountered a connection error|not queryable|ECONNREFUSED|ECONNRESET/i.test(e?.message ?? "")) return true;
  // Graphile Worker wraps the pg error ("Error occurred whilst …") and keeps it as the cause.
  return depth < 5 && e?.cause !== undefined && isConnectionLoss(e.cause, depth + 1);
}

export function installConnectionLossGuard(log: Logger): void {
  process.on("unhandledRejection", (reason) => {
    if (isConnectionLoss(reason)) {
      log.warn({ err: reason }, "database connection lost while recording a job result; continuing (leases recover the step)");
      return;
    }
    log.fatal({ err: reason }, "unhandled rejection");
    process.exit(1);
  });
}
