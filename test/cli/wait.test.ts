// `throughline wait` against the real server (API keys on): it follows the run over the runChanges
// subscription, resumes from its cursor when the socket drops, and polls the REST status route when
// the WebSocket is refused — with the same output and exit codes either way. A small proxy in front
// of the server counts status requests and upgrades, and can refuse or cut WebSockets.
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRunSql, testLog, useTestDatabase, useTestWorker, waitFor } from "../helpers.ts";
import { startServer, type ThroughlineServer } from "../../server/server.ts";
import { createApiKey } from "../../src/db/apiKeys.ts";
import { ciMain, type CiIo } from "../../src/ciCommands.ts";

interface Proxy {
  url: string;
  statusRequests: number;
  upgrades: number;
  refuseUpgrades: boolean;
  /** Cuts every WebSocket going through the proxy. */
  cut(): void;
  close(): Promise<void>;
}

async function startProxy(target: string): Promise<Proxy> {
  const t = new URL(target);
  const tunnels = new Set<net.Socket>();
  const proxy = {} as Proxy;
  Object.assign(proxy, { statusRequests: 0, upgrades: 0, refuseUpgrades: false });
  const server = http.createServer((req, res) => {
    if (/\/status$/.test(req.url ?? "")) proxy.statusRequests++;
    const upstream = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    proxy.upgrades++;
    if (proxy.refuseUpgrades) {
      socket.end("HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    const upstream = net.connect(Number(t.port), t.hostname, () => {
      const headers = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    tunnels.add(socket);
    const end = () => {
      tunnels.delete(socket);
      socket.destroy();
      upstream.destroy();
    };
    socket.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.cut = () => {
    for (const s of tunnels) s.destroy();
  };
  proxy.close = () => new Promise<void>((resolve) => {
    proxy.cut();
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return proxy;
}

const db = useTestDatabase();
let server: ThroughlineServer;
let proxy: Proxy;
let apiKey: string;

beforeAll(async () => {
  server = await startServer({ connectionString: db.url, pool: db.pool, log: testLog, port: 0, host: "127.0.0.1", maxInputBytes: 1024 * 1024, authMode: "keys", changesPollIntervalMs: 1000 });
  proxy = await startProxy(server.url);
  apiKey = (await createApiKey(db.pool, { name: "ci", role: "reader" })).apiKey;
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

interface Captured {
  code: number;
  out: string;
  err: string;
  /** Status requests and WebSocket upgrades this call made (through the proxy). */
  statusRequests: number;
  upgrades: number;
  ms: number;
}

async function wait(args: string[], opts: { tty?: boolean; key?: string; during?: () => Promise<void> } = {}): Promise<Captured> {
  let out = "";
  let err = "";
  const io: CiIo = {
    stdout: { write: (s: string) => (out += s), isTTY: opts.tty ?? false },
    stderr: { write: (s: string) => (err += s) },
    env: { THROUGHLINE_URL: proxy.url, THROUGHLINE_API_KEY: opts.key ?? apiKey },
    fetch: globalThis.fetch,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
  };
  const [status0, upgrades0, t0] = [proxy.statusRequests, proxy.upgrades, Date.now()];
  const [code] = await Promise.all([ciMain(["wait", ...args], io), opts.during?.()]);
  return { code, out, err, statusRequests: proxy.statusRequests - status0, upgrades: proxy.upgrades - upgrades0, ms: Date.now() - t0 };
}

const steps = ["BOM_CONSUMPTION", "BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"];
const slow = (ms: number) => Object.fromEntries(steps.map((s) => [s, { sleepMs: ms }]));
/** Polling once a minute could not see any of these runs end in time: only the subscription can. */
const noPolling = ["--interval", "60"];

describe("with a worker", () => {
  useTestWorker(db);

  test("follows the run over the subscription: every step printed as it ends, exit 0, one status read (the final table)", async () => {
    const token = await startRunSql(db.pool, "test_dag", { steps: slow(100) });
    const r = await wait([token, ...noPolling]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.ms).toBeLessThan(20_000);
    expect(r).toMatchObject({ upgrades: 1, statusRequests: 1, err: "" });
    for (const step of steps) expect(r.out.match(new RegExp(`^${step} COMPLETED$`, "gm")), step).toHaveLength(1);
    expect(r.out).toMatch(new RegExp(`run ${token} completed \\(.*\\)\n  BOM_CONSUMPTION +COMPLETED\n`));
  });

  test("a failed step: exit 1 with its reason, over the subscription", async () => {
    const token = await startRunSql(db.pool, "test_dag", { steps: { BOM_CONSUMPTION: { sleepMs: 200, fail: "terminal" } } });
    const r = await wait([token, ...noPolling]);
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.upgrades).toBe(1);
    expect(r.err).toBe("BOM_CONSUMPTION FAILED: BOM_CONSUMPTION failed on attempt 1 as the test asked\n");
    expect(r.out).toContain("BOM_PROCESSING CANCELLED\n");
    expect(r.out).toContain(`run ${token} FAILED (`);
  });

  test("--json prints the same object as polling", async () => {
    const token = await startRunSql(db.pool, "test_dag", { steps: { VULN_ANALYSIS: { notApplicable: true } } });
    const r = await wait([token, "--json", ...noPolling]);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out);
    expect(result).toMatchObject({ token, outcome: "COMPLETED", exitCode: 0 });
    expect(result.steps.map((s: { status: string }) => s.status)).toEqual(["COMPLETED", "COMPLETED", "NOT_APPLICABLE", "COMPLETED", "COMPLETED", "COMPLETED"]);
    expect(Object.keys(result.steps[0])).toEqual(["token", "step", "status", "startedAt", "updatedAt"]);
  });

  test("the socket drops mid-run: wait subscribes again from its last cursor and misses nothing", async () => {
    const token = await startRunSql(db.pool, "test_dag", { steps: { ...slow(300), BOM_CONSUMPTION: { sleepMs: 800 } } });
    const r = await wait([token, ...noPolling], {
      during: async () => {
        await waitFor(async () => proxy.upgrades > 0 && (await db.pool.query("select 1 from throughline.step where token = $1 and status = 'COMPLETED'", [token])).rowCount! > 0, { what: "a step to complete" });
        proxy.cut();
      },
    });
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.upgrades).toBe(2);
    expect(r.statusRequests).toBe(1);
    for (const step of steps) expect(r.out.match(new RegExp(`^${step} COMPLETED$`, "gm")), step).toHaveLength(1);
  });

  test("the WebSocket is refused: wait polls the status route instead, same output", async () => {
    proxy.refuseUpgrades = true;
    try {
      const token = await startRunSql(db.pool, "test_dag", { steps: slow(50) });
      const r = await wait([token, "--interval", "0.05"]);
      expect(r.code, r.out + r.err).toBe(0);
      expect(r.upgrades).toBe(1);
      expect(r.statusRequests).toBeGreaterThan(1);
      for (const step of steps) expect(r.out).toContain(`${step} COMPLETED\n`);
      expect(r.err).toBe("");
    } finally {
      proxy.refuseUpgrades = false;
    }
  });
});

describe("without a worker", () => {
  test("an unknown token exits 4 (the subscription says so; no status read)", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    const r = await wait([unknown, ...noPolling]);
    expect(r).toMatchObject({ code: 4, out: "", err: `Provided token ${unknown} does not exist.\n`, statusRequests: 0, upgrades: 1 });
  });

  test("a run cancelled while wait follows it exits 3", async () => {
    const token = await startRunSql(db.pool, "test_dag", {});
    const r = await wait([token, ...noPolling], {
      during: async () => {
        await waitFor(async () => server.changes.subscriberCount() > 0, { what: "wait to subscribe" });
        await db.pool.query("select throughline.cancel_run($1, 'no longer needed')", [token]);
      },
    });
    expect(r.code, r.out + r.err).toBe(3);
    expect(r.out).toContain("was CANCELLED");
    expect(r.statusRequests).toBe(1);
  });

  test("a TIMED_OUT step with no progress for --stall seconds exits 5", async () => {
    const token = await startRunSql(db.pool, "test_dag", {});
    await db.pool.query("select throughline.time_out_steps(now() + interval '2 hours')");
    const r = await wait([token, "--stall", "0.3", ...noPolling]);
    expect(r.code, r.out + r.err).toBe(5);
    expect(r.out).toContain("BOM_CONSUMPTION TIMED_OUT\n");
    expect(r.out).toContain("is stalled");
    expect(r.upgrades).toBe(1);
  });

  test("--timeout exits 6, with live progress on a TTY", async () => {
    const token = await startRunSql(db.pool, "test_dag", {});
    const r = await wait([token, "--timeout", "0.5", ...noPolling], { tty: true });
    expect(r.code).toBe(6);
    expect(r.out).toContain("\r\x1b[K0/6 steps done; waiting for BOM_CONSUMPTION, BOM_PROCESSING");
    expect(r.out).toMatch(/gave up waiting for run .* it is still processing\n/);
    expect(r.upgrades).toBe(1);
    expect(r.ms).toBeLessThan(5_000);
  });

  test("a wrong API key: the socket is refused, the status route answers 401, exit 2", async () => {
    const token = await startRunSql(db.pool, "test_dag", {});
    const r = await wait([token], { key: "tl_" + "0".repeat(64) });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/the server answered 401/);
  });
});
