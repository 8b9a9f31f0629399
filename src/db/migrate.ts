// Brings a database up to date: Graphile Worker's schema first (our functions enqueue into it),
// then our committed migrations (sql/committed, via graphile-migrate and .gmrc). Both take advisory
// locks, so several instances starting at once is safe.
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
}
