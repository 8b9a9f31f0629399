// Brings a database up to date: Graphile Worker's schema first (our functions enqueue into it),
// then our committed migrations (sql/committed, via graphile-migrate and .gmrc). Both take advisory
// locks, so several instances starting at once is safe.
import { createRequire } from "node:module";
import graphileMigrate from "graphile-migrate";
import { Logger as GraphileMigrateLogger } from "@graphile/logger";
import { runMigrations } from "graphile-worker";
import { migrateSettings } from "./migrateSettings.ts";
import type { Logger } from "../log.ts";
import { workerLogger } from "../runtime/workerLogger.ts";

export async function migrateDatabase(connectionString: string, log: Logger): Promise<void> {
  await runMigrations({ connectionString, logger: workerLogger(log) });
  const gmLog = log.child({ component: "graphile-migrate" });
  await graphileMigrate.migrate({
    ...migrateSettings({ connectionString }),
    logger: new GraphileMigrateLogger(() => (level, message) =>
      level === "error" ? gmLog.error(message) : level === "warning" ? gmLog.warn(message) : gmLog.debug(message)),
  });
  releaseMigrationPools();
}

/**
 * graphile-migrate keeps its pools for 200 ms after use, and exits the process (!) if one of them
 * sees a connection error, e.g. when Postgres stops right after migrating. Close them now.
 */
export function releaseMigrationPools(): void {
  const pgReal = createRequire(import.meta.url)("graphile-migrate/dist/pgReal.js") as { clearAllPools?: () => void };
  pgReal.clearAllPools?.();
}
