// `throughline submit | status | wait` against a real REST server: exit codes and what is printed.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bom, startRunSql, useTestDatabase, useTestWorker } from "../helpers.ts";
import { ciMain, type CiIo } from "../../src/ciCommands.ts";
import { startRestServer, type RestServer } from "../rest/server.ts";

const db = useTestDatabase();
let server: RestServer;
const dir = mkdtempSync(path.join(tmpdir(), "tl-ci-"));
const file = (name: string, content: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

beforeAll(async () => {
  server = await startRestServer(db.pool);
});
afterAll(async () => {
  await server?.close();
});

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function cli(argv: string[], opts: { tty?: boolean; env?: Record<string, string>; fetch?: typeof fetch } = {}): Promise<Captured> {
  let out = "";
  let err = "";
  const io: CiIo = {
    stdout: { write: (s: string) => (out += s), isTTY: opts.tty ?? false },
    stderr: { write: (s: string) => (err += s) },
    env: { THROUGHLINE_URL: server.url, ...opts.env },
    fetch: opts.fetch ?? globalThis.fetch,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
  };
  const code = await ciMain(argv, io);
  return { code, out, err };
}

const PROJECT = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const fast = ["--interval", "0.02"];

describe("with a worker", () => {
  useTestWorker(db);

  test("a completed run: submit --wait exits 0, printing each step as it ends", async () => {
    const r = await cli(["submit", "--project", PROJECT, "--bom", file("ok.json", JSON.stringify(bom.withComponents)), "--wait", ...fast]);
    expect(r.code, r.out + r.err).toBe(0);
    const [token] = r.out.split("\n");
    expect(token).toMatch(/^[0-9a-f-]{36}$/);
    for (const step of ["BOM_CONSUMPTION", "BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]) {
      expect(r.out).toContain(`${step} COMPLETED\n`);
    }
    expect(r.out).toMatch(new RegExp(`run ${token} completed \\(`));
    expect(r.err).toBe("");
    // wait on a finished run answers at once; status exits 0 too
    expect((await cli(["wait", token, ...fast])).code).toBe(0);
    const s = await cli(["status", token, "--json"]);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.out)).toMatchObject({ token, outcome: "COMPLETED", processing: false });
  });

  test("a failed run exits 1 and prints the failed step with its reason", async () => {
    const r = await cli(["submit", "--project", "broken-app@1.0", "--bom", file("bad.json", '{"bomFormat": "CycloneDX", "components": [}'), "--wait", ...fast]);
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.err).toBe('BOM_CONSUMPTION FAILED: BOM is not valid JSON at line 1, column 43: unexpected "}"\n');
    expect(r.out).toContain("FAILED (");
    expect(r.out).toContain("BOM_PROCESSING CANCELLED\n");
  });

  test("an empty BOM exits 0 (NOT_APPLICABLE counts as success); --json prints one object", async () => {
    const r = await cli(["submit", "--project", "empty-app", "--bom", file("empty.json", JSON.stringify(bom.empty)), "--wait", "--json", ...fast]);
    expect(r.code, r.out + r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(result).toMatchObject({ outcome: "COMPLETED", exitCode: 0 });
    expect(result.steps.map((s: { status: string }) => s.status)).toEqual(["COMPLETED", "COMPLETED", "NOT_APPLICABLE", "NOT_APPLICABLE", "NOT_APPLICABLE", "COMPLETED"]);
    expect((await db.pool.query("select subject from throughline.run where token = $1", [result.token])).rows[0].subject).toBe("empty-app");
  });

  test("submit --analyze starts a re-analysis", async () => {
    const r = await cli(["submit", "--analyze", "--project", PROJECT, "--wait", ...fast]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain("METRICS_UPDATE COMPLETED\n");
  });
  test("the server unreachable for a while after the run was seen (a restart): wait keeps trying and exits with the run's outcome", async () => {
    const token = await startRunSql(db.pool, "test_dag", { steps: { VULN_ANALYSIS: { sleepMs: 2500 } } });
    let seenOnce = false;
    let refused = 0;
    const flaky: typeof fetch = async (input, init) => {
      const url = String(input);
      if (url.endsWith("/status") && seenOnce && refused < 8) {
        refused++;
        throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
      }
      const res = await fetch(input, init);
      if (url.endsWith("/status")) seenOnce = true;
      return res;
    };
    const r = await cli(["wait", token, ...fast], { fetch: flaky });
    expect(refused).toBe(8);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.err).toMatch(/cannot reach Throughline at .*ECONNREFUSED; retrying/);
    expect(r.out).toMatch(/run .* completed/);
  });
});

describe("without a worker (runs stay where SQL puts them)", () => {
  test("an unknown token exits 4", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    const w = await cli(["wait", unknown, ...fast]);
    expect(w).toEqual({ code: 4, out: "", err: `Provided token ${unknown} does not exist.\n` });
    expect((await cli(["status", unknown])).code).toBe(4);
    expect(JSON.parse((await cli(["wait", unknown, "--json"])).out)).toEqual({ token: unknown, outcome: "UNKNOWN_TOKEN", exitCode: 4, steps: [] });
  });

  test("a run still processing: --timeout exits 6; live progress on a TTY", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "slow" }, { subject: "slow" });
    const r = await cli(["wait", token, "--timeout", "0.2", ...fast], { tty: true });
    expect(r.code).toBe(6);
    expect(r.out).toContain("\r\x1b[K0/3 steps done; waiting for VULN_ANALYSIS, POLICY_EVALUATION, METRICS_UPDATE");
    expect(r.out).toMatch(/gave up waiting for run .* it is still processing\n/);
    const s = await cli(["status", token]);
    expect(s.code).toBe(0);
    expect(s.out).toContain(`${token}  PROCESSING\n`);
  });

  test("a status answer that is not JSON (a login page from a proxy) exits 2 saying so", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "proxied" }, { subject: "proxied" });
    const html: typeof fetch = async (input, init) => String(input).endsWith("/status")
      ? new Response("<html>Please log in</html>", { status: 200, headers: { "content-type": "text/html" } })
      : fetch(input, init);
    const r = await cli(["wait", token, ...fast], { fetch: html });
    expect(r.code, r.out + r.err).toBe(2);
    expect(r.err).toContain("the server answered 200 with something that is not JSON: <html>Please log in</html>");
  });

  test("a cancelled run exits 3", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "to-cancel" }, { subject: "to-cancel" });
    await db.pool.query("select throughline.cancel_run($1, 'no longer needed')", [token]);
    const r = await cli(["wait", token, ...fast]);
    expect(r.code).toBe(3);
    expect(r.out).toContain("was CANCELLED");
  });

  test("a TIMED_OUT step with no progress for --stall seconds exits 5", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "stuck" }, { subject: "stuck" });
    await db.pool.query("select throughline.time_out_steps(now() + interval '2 hours')");
    const r = await cli(["wait", token, "--stall", "0.2", ...fast]);
    expect(r.code, r.out + r.err).toBe(5);
    expect(r.out).toContain("VULN_ANALYSIS TIMED_OUT\n");
    expect(r.err).toContain("VULN_ANALYSIS TIMED_OUT");
  });

  test("usage and configuration errors exit 2", async () => {
    expect((await cli(["wait", "not-a-token"])).code).toBe(2);
    expect((await cli(["wait"])).code).toBe(2);
    expect((await cli(["frobnicate"])).code).toBe(2);
    expect((await cli(["submit", "--project", PROJECT])).code).toBe(2);
    expect((await cli(["submit", "--project", PROJECT, "--bom", path.join(dir, "missing.json")])).code).toBe(2);
    expect((await cli(["wait", PROJECT, "--timeout", "soon"])).code).toBe(2);
    expect((await cli(["wait", PROJECT, "--bogus"])).code).toBe(2);
    expect((await cli(["status", PROJECT], { env: { THROUGHLINE_URL: "ftp://x" } })).code).toBe(2);
    const unreachable = await cli(["status", PROJECT], { env: { THROUGHLINE_URL: "http://127.0.0.1:1" } });
    expect(unreachable.code).toBe(2);
    expect(unreachable.err).toMatch(/^throughline: cannot reach Throughline at http:\/\/127\.0\.0\.1:1/);
  });
});
