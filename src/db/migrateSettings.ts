// graphile-migrate settings: .gmrc (committed, no secrets) plus the connection strings of this run.
import { readFileSync } from "node:fs";
import path from "node:path";
import JSON5 from "json5";
import graphileMigrate from "graphile-migrate";
import { projectRoot } from "../config.ts";

export type MigrateSettings = Parameters<typeof graphileMigrate.migrate>[0];

export function migrateSettings(connections: Pick<MigrateSettings, "connectionString" | "shadowConnectionString" | "rootConnectionString">): MigrateSettings {
  const gmrc = JSON5.parse(readFileSync(path.join(projectRoot, ".gmrc"), "utf8")) as MigrateSettings;
  return { ...gmrc, ...connections, migrationsFolder: path.join(projectRoot, "sql") };
}
