// Graphile Worker logs through its own Logger interface; route it into our pino logger.
import { Logger as GraphileWorkerLogger } from "graphile-worker";
import type { Logger } from "../log.ts";

export function workerLogger(log: Logger): GraphileWorkerLogger {
  const wlog = log.child({ component: "graphile-worker" });
  return new GraphileWorkerLogger(() => (level, message, meta) => {
    const fields = meta ?? {};
    if (level === "error") wlog.error(fields, message);
    else if (level === "warning") wlog.warn(fields, message);
    else wlog.debug(fields, message);
  });
}
