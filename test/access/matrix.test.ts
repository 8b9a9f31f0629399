// The access matrix, through the real doors: each role and scope × GraphQL queries, mutations and
// subscriptions × the Dependency-Track REST routes. A key scoped to one project cannot see another
// project's runs by any route.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createClient } from "graphql-ws";
import { startServer, type ThroughlineServer } from "../../server/server.ts";
import { createApiKey } from "../../src/db/apiKeys.ts";
import { bom, startRunSql, testLog, TestWebSocket, useTestDatabase } from "../helpers.ts";

const db = useTestDatabase();
let server: ThroughlineServer;
const keys: Record<string, string> = {};
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  server = await startServer({ connectionString: db.url, pool: db.pool, log: testLog, port: 0, host: "127.0.0.1", maxInputBytes: 1024 * 1024, authMode: "keys" });
  for (const [name, role, subjects] of [
    ["readerAll", "reader", null], ["readerA", "reader", ["proj-a"]], ["submitterA", "submitter", ["proj-a"]],
    ["adminAll", "admin", null],
  ] as const) {
    keys[name] = (await createApiKey(db.pool, { name, role, subjects: subjects ? [...subjects] : null })).apiKey;
  }
  tokenA = await startRunSql(db.pool, "reanalysis", { project: "proj-a" });
  tokenB = await startRunSql(db.pool, "reanalysis", { project: "proj-b" });
});
afterAll(async () => {
  await server?.close();
});

async function gql(key: string | undefined, query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { "x-api-key": key } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, body: await res.json() as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] } };
}

async function rest(key: string | undefined, path: string, init: RequestInit = {}) {
  const res = await fetch(`${server.url}${path}`, { ...init, headers: { ...(init.headers ?? {}), ...(key ? { "x-api-key": key } : {}) } });
  return { status: res.status, text: await res.text() };
}

describe("without a valid key", () => {
  test.each([["no key", undefined], ["a wrong key", "tl_" + "0".repeat(64)]])("%s: GraphQL and REST answer 401", async (_, key) => {
    const g = await gql(key, "{ isProcessing(token: \"" + "00000000-0000-0000-0000-000000000000" + "\") }");
    expect(g.status).toBe(401);
    expect(g.body.errors![0].message).toMatch(key ? /not valid/ : /API key is required/);
    const r = await rest(key, `/api/v1/bom/token/${tokenA}`);
    expect(r.status).toBe(401);
  });
});

describe("reading", () => {
  const runQuery = "query($t: UUID!) { run(token: $t) { token subject steps { nodes { step status } } } }";

  test("an unscoped reader sees both projects", async () => {
    for (const t of [tokenA, tokenB]) {
      const g = await gql(keys.readerAll, runQuery, { t });
      expect(g.body.data.run.token).toBe(t);
      expect((await rest(keys.readerAll, `/api/v1/workflow/token/${t}/status`)).status).toBe(200);
    }
  });

  test("a key scoped to proj-a sees proj-a and nothing of proj-b, by any route", async () => {
    const mine = await gql(keys.readerA, runQuery, { t: tokenA });
    expect(mine.body.data.run.steps.nodes).toHaveLength(3);
    const theirs = await gql(keys.readerA, runQuery, { t: tokenB });
    expect(theirs.body.data.run).toBeNull();
    const search = await gql(keys.readerA, "{ searchRuns { nodes { token subject } } }");
    expect(search.body.data.searchRuns.nodes.map((r: { subject: string }) => r.subject)).toEqual(["proj-a"]);
    const steps = await gql(keys.readerA, "{ steps { nodes { token } } }");
    expect(new Set(steps.body.data.steps.nodes.map((s: { token: string }) => s.token))).toEqual(new Set([tokenA]));
    expect(await gql(keys.readerA, "query($t: UUID!) { isProcessing(token: $t) }", { t: tokenB })).toMatchObject({ body: { data: { isProcessing: false } } });
    expect(await rest(keys.readerA, `/api/v1/workflow/token/${tokenB}/status`)).toEqual({ status: 404, text: `Provided token ${tokenB} does not exist.` });
    expect(await rest(keys.readerA, `/api/v1/bom/token/${tokenB}`)).toEqual({ status: 200, text: '{"processing":false}' });
    expect((await rest(keys.readerA, `/api/v2/workflows/${tokenB}`)).status).toBe(404); // as for a token that does not exist
    expect((await rest(keys.readerA, `/api/v1/workflow/token/${tokenA}/status`)).status).toBe(200);
  });

  test("a scoped key’s subscription shows its project only", async () => {
    const client = createClient({ url: `${server.url.replace("http", "ws")}/graphql`, webSocketImpl: TestWebSocket, connectionParams: { "X-Api-Key": keys.readerA }, retryAttempts: 0 });
    try {
      const first = await new Promise<any>((resolve, reject) => {
        const stop = client.subscribe({ query: "subscription { runsChanges { cursor runs { subject } } }" }, {
          next: (m) => (stop(), resolve(m)), error: reject, complete: () => {},
        });
      });
      expect(first.data.runsChanges.runs.map((r: { subject: string }) => r.subject)).toEqual(["proj-a"]);
      const refused = await new Promise<any>((resolve) => {
        client.subscribe({ query: `subscription { runChanges(token: "${tokenB}") { cursor } }` }, {
          next: resolve, error: resolve, complete: () => {},
        });
      });
      expect(JSON.stringify(refused)).toContain(`Provided token ${tokenB} does not exist.`);
    } finally {
      await client.dispose();
    }
  });
});

describe("acting", () => {
  const start = "mutation($p: String!) { startRun(input: { workflow: \"reanalysis\", input: { project: $p } }) { result { token subject } } }";

  test("a reader cannot start, cancel or upload", async () => {
    const g = await gql(keys.readerAll, start, { p: "proj-a" });
    expect(g.body.errors![0].message).toMatch(/permission denied/i);
    const upload = await rest(keys.readerAll, "/api/v1/bom", {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ project: "6c0f6a6e-2b2a-4a4e-9f0a-0e7c9d1b2c3d", bom: Buffer.from(JSON.stringify(bom.empty)).toString("base64") }),
    });
    expect(upload.status).toBe(403);
  });

  test("a scoped submitter starts runs of its project only, and cannot cancel another’s", async () => {
    const ok = await gql(keys.submitterA, start, { p: "proj-a" });
    expect(ok.body.data.startRun.result.subject).toBe("proj-a");
    const other = await gql(keys.submitterA, start, { p: "proj-b" });
    expect(other.body.errors![0].message).toBe("this API key may not start runs for subject proj-b");
    const cancel = await gql(keys.submitterA, "mutation($t: UUID!) { cancelRun(input: { token: $t }) { result { status } } }", { t: tokenB });
    expect(cancel.body.errors![0].message).toBe(`Provided token ${tokenB} does not exist.`);
    const upload = await rest(keys.submitterA, "/api/v1/bom", {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ projectName: "proj-b", bom: Buffer.from(JSON.stringify(bom.empty)).toString("base64") }),
    });
    expect(upload.status).toBe(403);
    const mine = await rest(keys.submitterA, "/api/v1/bom", {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ projectName: "proj-a", bom: Buffer.from(JSON.stringify(bom.empty)).toString("base64") }),
    });
    expect(mine.status).toBe(200);
  });

  test("only an admin retries steps", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "proj-z" });
    await db.pool.query("select throughline.cancel_run($1)", [token]);
    const stepId = (await db.pool.query("select id from throughline.step where token = $1 and step = 'VULN_ANALYSIS'", [token])).rows[0].id;
    const retry = "mutation($s: BigInt!) { retryStep(input: { stepId: $s }) { result { status } } }";
    expect((await gql(keys.readerAll, retry, { s: stepId })).body.errors![0].message).toMatch(/permission denied/i);
    const byAdmin = await gql(keys.adminAll, retry, { s: stepId });
    expect(byAdmin.body.errors).toBeUndefined();
    expect(byAdmin.body.data.retryStep.result.status).toBe("PENDING");
  });
});
