// Dependency-Track REST compatibility routes (placeholder: implemented in its own change).
import type { IncomingMessage, ServerResponse } from "node:http";
import type pg from "pg";
import type { Logger } from "../../src/log.ts";

export interface RestDeps {
  pool: pg.Pool;
  log: Logger;
  /** Largest accepted request body in bytes. */
  maxBodyBytes: number;
}

/** Returns a handler that answers the routes it knows (true) and leaves the rest (false). */
export function createDependencyTrackHandler(_deps: RestDeps): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async () => false;
}
