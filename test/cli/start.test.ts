// `throughline start` with no DATABASE_URL: boots its own Postgres, migrates, runs the worker, and
// shuts everything down cleanly on SIGTERM / Ctrl-C — no orphaned postgres. Also: a second command
// on the same machine shares that Postgres; a bad setting stops start-up with a clear message.
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, expect, test } from "vitest";
import { makeTempDir, pidAlive } from "../../src/postgres/localPostgres.ts";
import { spawnThroughline, type ThroughlineProcess } from "../processes.ts";
import { bom, waitFor } from "../helpers.ts";
import { writeFileSync } from "node:fs";

const dir = makeTempDir("tl-cli-");
const started: ThroughlineProcess[] = [];
afterEach(async () => {
  for (const p of started.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.kill("SIGKILL");
      await p.exited;
    }
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const httpPort = 52000 + (process.pid % 900);
const env = {
  THROUGHLINE_DATA_DIR: path.join(dir, "pgdata"),
  THROUGHLINE_PG_PORT: String(59000 + (process.pid % 900)),
  PORT: String(httpPort),
  THROUGHLINE_URL: `http://127.0.0.1:${httpPort}`,
};

test.each(["SIGTERM", "SIGINT"] as const)("start boots an embedded Postgres, runs BOMs, and stops it on %s", async (signal) => {
  const app = spawnThroughline(["start"], env);
  started.push(app);
  await app.waitForOutput(/Stop: +Ctrl-C/, 60_000); // the whole banner
  const pid = Number(readFileSync(path.join(env.THROUGHLINE_DATA_DIR, "postmaster.pid"), "utf8").split("\n")[0]);
  expect(pidAlive(pid)).toBe(true);

  // The quick start's next commands: submit the example BOM and wait for it, over HTTP with the
  // local admin key `start` wrote; then a second database command (keys) shares the running Postgres.
  expect(app.output()).toMatch(/API key: +.*api-key \(admin, local development/);
  const bomFile = path.join(dir, "bom.json");
  writeFileSync(bomFile, JSON.stringify(bom.withComponents));
  const submit = spawnThroughline(["submit", "--project", "cli-demo", "--bom", bomFile, "--wait"], env);
  const submitted = await submit.exited;
  expect(submit.output()).toMatch(/[0-9a-f-]{36}/);
  expect(submitted.code, submit.output()).toBe(0); // every step COMPLETED or NOT_APPLICABLE
  const keys = spawnThroughline(["keys", "list"], env);
  expect((await keys.exited).code, keys.output()).toBe(0);
  expect(keys.output()).toMatch(/admin +all subjects +local development/);
  // Its logs (sharing the embedded Postgres) go to stderr: `--json` output stays parseable.
  const json = spawnThroughline(["keys", "list", "--json"], env);
  expect((await json.exited).code, json.output()).toBe(0);
  expect(json.output()).toMatch(/embedded Postgres/);
  expect(JSON.parse(json.stdout())).toContainEqual(expect.objectContaining({ role: "admin", name: expect.stringMatching(/local development/) }));
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
  started.push(first);
  await first.waitForOutput(/Throughline is ready/, 60_000);
  const orphan = Number(readFileSync(path.join(env.THROUGHLINE_DATA_DIR, "postmaster.pid"), "utf8").split("\n")[0]);
  first.kill("SIGKILL");
  await first.exited;
  expect(pidAlive(orphan)).toBe(true); // SIGKILL gives no chance to clean up
  const second = spawnThroughline(["start"], env);
  started.push(second);
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
