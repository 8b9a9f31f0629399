// One structured logger for every part of the runtime (pino). Children name their component.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { app: "throughline" } });
}
