// `throughline start` with no DATABASE_URL: boots its own Postgres, migrates, runs the worker, and
// shuts everything down cleanly on SIGTERM / Ctrl-C — no orphaned postgres. Also: a second command
// on the same machine shares that Postgres; a bad setting stops start-up with a clear message.
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, expect, test } from "vitest";
import { makeTempDir } from "../../src/postgres/localPostgres.ts";
import { spawnThroughline } from "../processes.ts";
import { bom, waitFor } from "../helpers.ts";
import { writeFileSync } from "node:fs";

const dir = makeTempDir("tl-cli-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const env = {
  THROUGHLINE_DATA_DIR: path.join(dir, "pgdata"),
  THROUGHLINE_PG_PORT: String(59000 + (process.pid % 900)),
  PORT: "0",
};

test.each(["SIGTERM", "SIGINT"] as const)("start boots an embedded Postgres, runs BOMs, and stops it on %s", async (signal) => {
  const app = spawnThroughline(["start"], env);
  await app.waitForOutput(/Throughline is ready/, 60_000);
  const pid = Number(readFileSync(path.join(env.THROUGHLINE_DATA_DIR, "postmaster.pid"), "utf8").split("\n")[0]);
  expect(pidAlive(pid)).toBe(true);

  // A second command shares the running Postgres instead of starting (or stopping) another.
  const bomFile = path.join(dir, "bom.json");
  writeFileSync(bomFile, JSON.stringify(bom.withComponents));
  const submit = spawnThroughline(["submit", "--project", "cli-demo", "--bom", bomFile], env);
  expect((await submit.exited).code).toBe(0);
  const token = submit.output().trim().split("\n").pop()!;
  expect(token).toMatch(/^[0-9a-f-]{36}$/);
  await waitFor(async () => {
    const status = spawnThroughline(["status", token, "--json"], env);
    await status.exited;
    const line = status.output().split("\n").find((l) => l.startsWith("{\"run\""));
    return line && JSON.parse(line).run.status === "COMPLETED";
  }, { timeoutMs: 30_000, intervalMs: 250, what: "the submitted BOM to complete" });
  expect(pidAlive(pid)).toBe(true);

  app.kill(signal);
  const exit = await app.exited;
  expect(exit.code).toBe(0);
  expect(app.output()).toMatch(/"msg":"stopped"/);
  await waitFor(async () => !pidAlive(pid), { timeoutMs: 5_000, what: "postgres to exit" });
  expect(existsSync(path.join(env.THROUGHLINE_DATA_DIR, "postmaster.pid"))).toBe(false);
});

test("a Postgres left behind by a killed start is stopped and replaced by the next start", async () => {
  const first = spawnThroughline(["start"], env);
  await first.waitForOutput(/Throughline is ready/, 60_000);
  const orphan = Number(readFileSync(path.join(env.THROUGHLINE_DATA_DIR, "postmaster.pid"), "utf8").split("\n")[0]);
  first.kill("SIGKILL");
  await first.exited;
  expect(pidAlive(orphan)).toBe(true); // SIGKILL gives no chance to clean up
  const second = spawnThroughline(["start"], env);
  await second.waitForOutput(/Throughline is ready/, 60_000);
  expect(pidAlive(orphan)).toBe(false);
  second.kill("SIGTERM");
  expect((await second.exited).code).toBe(0);
});

test("a bad setting stops start-up with the variable, its value and what is wanted", async () => {
  const app = spawnThroughline(["start"], { ...env, THROUGHLINE_LEASE_SECONDS: "soon" });
  const exit = await app.exited;
  expect(exit.code).toBe(2);
  expect(app.output()).toMatch(/Invalid configuration:\n {2}THROUGHLINE_LEASE_SECONDS="soon": /);
});
