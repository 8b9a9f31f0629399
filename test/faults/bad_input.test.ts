// Hostile input through every door — SQL start_run, GraphQL (mutations, queries, subscription
// arguments) and every REST route — generated with fast-check: random and nasty JSON (deep nesting,
// huge strings, NUL characters, lone surrogates, numbers out of range), invalid UUIDs, wrong types.
// Whatever comes in, the answer is a clear 4xx (or a SQL error with one of our codes), never a 500,
// never a crash of the server process, and never a partly written run.
// Seeded (FC_SEED overrides) so a failure reproduces; fast-check prints the counterexample and path.
import { afterAll, beforeAll, expect, test } from "vitest";
import fc from "fast-check";
import { createClient } from "graphql-ws";
import { createApiKey } from "../../src/db/apiKeys.ts";
import { startServeProcess, type ServeProcess } from "../serverProcess.ts";
import { TestWebSocket, useTestDatabase } from "../helpers.ts";

const db = useTestDatabase();
let server: ServeProcess;
let apiKey: string;
const seed = Number(process.env.FC_SEED ?? 20240611);
const numRuns = 60;
/** Tokens of the runs the doors accepted: the run count may grow by exactly these. */
const accepted = new Set<string>();
let baseline: { runs: number; steps: number; events: number };

beforeAll(async () => {
  apiKey = (await createApiKey(db.pool, { name: "bad-input", role: "admin" })).apiKey;
  server = await startServeProcess(db.url, apiKey);
  baseline = await counts();
}, 90_000);
afterAll(async () => {
  server?.process.kill("SIGTERM");
  await server?.process.exited;
});

async function counts() {
  const { rows } = await db.pool.query(`select (select count(*)::int from throughline.run) as runs,
    (select count(*)::int from throughline.step) as steps, (select count(*)::int from throughline.event) as events`);
  return rows[0] as { runs: number; steps: number; events: number };
}

/** No partly written run, and the tables grew by whole accepted runs only. */
async function expectWholeRuns() {
  const partial = await db.pool.query(`select r.token from throughline.run r
     where not exists (select 1 from throughline.step s where s.token = r.token)
        or r.steps_total <> (select count(*) from throughline.step s where s.token = r.token)
        or not exists (select 1 from throughline.event e where e.token = r.token and e.kind = 'RUN_CREATED')`);
  expect(partial.rows).toEqual([]);
  const orphans = await db.pool.query(`select (select count(*)::int from throughline.step s where not exists (select 1 from throughline.run r where r.token = s.token))
    + (select count(*)::int from throughline.event e where not exists (select 1 from throughline.run r where r.token = e.token)) as n`);
  expect(orphans.rows[0].n).toBe(0);
  const now = await counts();
  expect(now.runs - baseline.runs).toBe(accepted.size);
  expect(now.steps).toBeGreaterThanOrEqual(baseline.steps);
  expect(now.events).toBeGreaterThanOrEqual(baseline.events);
  const stepsOfNew = await db.pool.query("select coalesce(sum(steps_total), 0)::int as n from throughline.run where token = any($1::uuid[])", [[...accepted]]);
  expect(now.steps - baseline.steps).toBe(stepsOfNew.rows[0].n);
}

function expectAlive() {
  expect(server.process.child.exitCode, `server exited:\n${server.process.output().slice(-3000)}`).toBeNull();
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const nasty = fc.constantFrom("\u0000", "a\u0000b", "\ud800", "\udfff", "x\ud83d", "\ud83d\ude00", "\uffff", "\u202e", "%00", "'; drop table throughline.run; --",
  "\\", "\"", "{", "null", "00000000-0000-0000-0000-00000000000g", "00000000-0000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}");
const hostileString = fc.oneof(
  { arbitrary: fc.string(), weight: 3 },
  { arbitrary: fc.string({ unit: "binary" }), weight: 3 },
  { arbitrary: nasty, weight: 3 },
  { arbitrary: fc.integer({ min: 10_000, max: 300_000 }).map((n) => "é".repeat(n)), weight: 1 },
  { arbitrary: fc.uuid(), weight: 1 },
);
const hostileNumber = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(1e308, -1e308, 5e-324, 2 ** 63, -(2 ** 63), 2 ** 31, 9007199254740993));
/** Nested to a random depth: arrays, objects, or both alternating. */
const deep = fc.tuple(fc.integer({ min: 1, max: 1_500 }), fc.constantFrom("array", "object", "mixed")).map(([depth, kind]) => {
  let v: unknown = "bottom";
  for (let i = 0; i < depth; i++) v = kind === "array" || (kind === "mixed" && i % 2) ? [v] : { k: v };
  return v;
});
const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small", withCrossShrink: true },
    hostileString, hostileNumber, fc.boolean(), fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(hostileString, tie("value"), { maxKeys: 4 }),
    deep),
})).value;
/** JSON text, including texts JSON.stringify never writes (numbers out of range, escaped NUL and surrogates). */
const rawJsonText = fc.oneof(
  hostileJson.map((v) => JSON.stringify(v) ?? "null"),
  fc.constantFrom('{"a": 1e1000000}', '{"a": -1e1000000}', '{"a": 1e-1000000}', '{"a": "\\u0000"}', '{"a": "\\ud800"}', '{"\\udfff": 1}',
    '{"a": 123456789012345678901234567890123456789012345678901234567890}', "{", "", "[1,", '{"a":1}garbage', "NaN", '{"a": Infinity}'),
  fc.string({ unit: "binary" }),
);
const uuidish = fc.oneof(fc.uuid(), hostileString, fc.constantFrom("", "00000000-0000-0000-0000-000000000000", "ZZZZZZZZ-0000-0000-0000-000000000000", "0".repeat(36)));
const workflowName = fc.oneof(fc.constantFrom("test_dag", "test_single", "bom_upload", "reanalysis"), hostileString);
/** Any JSON value, or an object (what start_run wants), half of the time. */
const runInput = fc.oneof(hostileJson, fc.dictionary(hostileString, hostileJson, { maxKeys: 4 }));

// ---------------------------------------------------------------------------------------------
// SQL

/** SQLSTATEs a bad argument may get: ours (TL…) and Postgres' data exceptions (class 22) and limits (54). */
function expectClearSqlError(e: unknown) {
  const code = (e as { code?: string }).code ?? "";
  expect(code, `unexpected error ${code}: ${(e as Error).message}`).toMatch(/^(TL\w{3}|22\w{3}|54\w{3})$/);
}

test("SQL start_run: hostile arguments are refused with a clear SQLSTATE, or make a whole run", async () => {
  await fc.assert(fc.asyncProperty(workflowName, rawJsonText, fc.option(hostileString), rawJsonText, fc.option(uuidish), async (workflow, input, subject, labels, token) => {
    try {
      const { rows } = await db.pool.query("select token from throughline.start_run($1, $2::jsonb, $3, $4::jsonb, $5::uuid)", [workflow, input, subject, labels, token]);
      accepted.add(rows[0].token);
    } catch (e) {
      expectClearSqlError(e);
    }
  }), { numRuns: 100, seed });
  await expectWholeRuns();
  const { rows } = await db.pool.query("select count(*)::int as n from throughline.run r where not exists (select 1 from throughline.step s where s.token = r.token)");
  expect(rows[0].n).toBe(0);
});

// ---------------------------------------------------------------------------------------------
// GraphQL

/** A GraphQL answer to bad input: no 5xx, and every error a clear one (never a masked internal error). */
function expectClearGraphql(r: { status: number; body: any }) {
  expect(r.status, JSON.stringify(r.body).slice(0, 500)).toBeLessThan(500);
  expect(typeof r.body, String(r.body).slice(0, 500)).toBe("object");
  for (const e of r.body.errors ?? []) {
    expect(e.extensions?.code, `masked internal error: ${JSON.stringify(e)} — server log:\n${server.process.output().slice(-2000)}`).not.toBe("INTERNAL");
    expect(e.message).not.toMatch(/internal error/i);
  }
}

test("GraphQL startRun: hostile variables get clear errors or make a whole run", async () => {
  const mutation = "mutation($input: StartRunInput!) { startRun(input: $input) { result { token } } }";
  await fc.assert(fc.asyncProperty(
    fc.record({ workflow: fc.oneof(workflowName, hostileJson), input: runInput, subject: fc.option(fc.oneof(hostileString, hostileJson)), labels: fc.option(hostileJson), token: fc.option(fc.oneof(uuidish, hostileJson)) }, { requiredKeys: [] }),
    async (input) => {
      const r = await server.graphql(mutation, { input });
      expectClearGraphql(r);
      const token = r.body.data?.startRun?.result?.token;
      if (token) accepted.add(token);
    }), { numRuns, seed });
  expectAlive();
  await expectWholeRuns();
});

test("GraphQL queries: run(token), isProcessing, searchRuns with hostile arguments", async () => {
  await fc.assert(fc.asyncProperty(
    fc.oneof(uuidish, hostileJson), fc.record({
      workflow: fc.oneof(hostileString, hostileJson), status: fc.oneof(fc.constantFrom("PENDING", "COMPLETED"), hostileString), subject: hostileString,
      labels: hostileJson, createdAfter: fc.oneof(hostileString, fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom("infinity", "-infinity", "294277-01-01T00:00:00Z", "4713-01-01T00:00:00 BC")),
      createdBefore: hostileString, first: fc.oneof(hostileNumber, hostileString), after: hostileString,
    }, { requiredKeys: [] }),
    async (token, search) => {
      expectClearGraphql(await server.graphql("query($t: UUID!) { run(token: $t) { token steps { nodes { step } } } isProcessing(token: $t) }", { t: token }));
      expectClearGraphql(await server.graphql(
        `query($workflow: String, $status: String, $subject: String, $labels: JSON, $createdAfter: Datetime, $createdBefore: Datetime, $first: Int, $after: Cursor) {
           searchRuns(workflow: $workflow, status: $status, subject: $subject, labels: $labels, createdAfter: $createdAfter, createdBefore: $createdBefore, first: $first, after: $after) { totalCount nodes { token } } }`,
        search));
    }), { numRuns, seed });
  expectAlive();
});

test("GraphQL subscriptions: hostile arguments end the subscription with a clear error, the socket server survives", async () => {
  const client = createClient({ url: server.wsUrl, webSocketImpl: TestWebSocket, connectionParams: { "X-Api-Key": apiKey }, retryAttempts: 0, lazy: false, onNonLazyError: () => {} });
  try {
    const first = (query: string, variables: Record<string, unknown>) => new Promise<{ ok: boolean; payload: unknown }>((resolve) => {
      let stop = () => {};
      stop = client.subscribe({ query, variables }, {
        next: (m) => (stop(), resolve({ ok: !m.errors, payload: m })),
        error: (e) => resolve({ ok: false, payload: e }),
        complete: () => resolve({ ok: true, payload: "complete" }),
      });
    });
    const clear = (r: { ok: boolean; payload: unknown }) => {
      const text = JSON.stringify(r.payload, (_, v) => v instanceof Error ? v.message : v) ?? String(r.payload);
      if (!r.ok) {
        expect(text, "a socket-level failure instead of an error message").not.toMatch(/"code":1011|Internal error|CloseEvent/i);
      }
    };
    await fc.assert(fc.asyncProperty(
      fc.oneof(uuidish, hostileJson), fc.option(fc.oneof(hostileString, hostileJson)), fc.option(fc.oneof(hostileString, hostileJson)),
      fc.option(fc.oneof(hostileNumber, hostileString)),
      async (token, after, workflow, count) => {
        clear(await first("subscription($t: UUID!, $a: String) { runChanges(token: $t, after: $a) { cursor } }", { t: token, a: after }));
        clear(await first("subscription($w: String, $a: String, $f: Int) { runsChanges(workflow: $w, subject: $w, after: $a, first: $f) { cursor } }", { w: workflow, a: after, f: count }));
      }), { numRuns: 40, seed });
    // The socket still works for a good subscription.
    const ok = await first("subscription { runsChanges(first: 1) { cursor } }", {});
    expect(ok.ok).toBe(true);
  } finally {
    await client.dispose();
  }
  expectAlive();
});

// ---------------------------------------------------------------------------------------------
// REST

/** A REST answer to bad input: a 2xx or a 4xx with a body, never a 5xx. */
function expectClearRest(r: { status: number; contentType: string | null; text: string }, what: string) {
  expect(r.status, `${what} → ${r.status} ${r.text.slice(0, 300)}\nserver log:\n${server.process.output().slice(-2000)}`).toBeLessThan(500);
  if (r.status >= 400) expect(r.text.length, what).toBeGreaterThan(0);
}

const acceptToken = (r: { status: number; text: string }) => {
  if (r.status !== 200) return;
  const token = (JSON.parse(r.text) as { token?: string }).token;
  if (token) accepted.add(token);
};

const b64 = (v: string) => Buffer.from(v).toString("base64");
const uploadField = fc.oneof(hostileJson, hostileString, uuidish);
const uploadBody = fc.oneof(
  hostileJson,
  fc.record({ project: uploadField, projectName: uploadField, projectVersion: uploadField, autoCreate: uploadField, bom: fc.oneof(uploadField, rawJsonText.map(b64), hostileString.map(b64)) }, { requiredKeys: [] }),
);

test("REST PUT /api/v1/bom (JSON) and POST /api/v1/bom (multipart): hostile bodies get 4xx or make a whole run", async () => {
  await fc.assert(fc.asyncProperty(fc.oneof(uploadBody.map((v) => JSON.stringify(v) ?? "null"), rawJsonText), fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", ""),
    async (body, contentType) => {
      const r = await server.rest("PUT", "/api/v1/bom", { headers: contentType ? { "content-type": contentType } : {}, body });
      expectClearRest(r, `PUT /api/v1/bom ${body.slice(0, 200)}`);
      acceptToken(r);
    }), { numRuns, seed });
  await fc.assert(fc.asyncProperty(
    fc.dictionary(fc.oneof(fc.constantFrom("project", "projectName", "projectVersion", "autoCreate", "bom"), hostileString), fc.tuple(hostileString, fc.boolean()), { maxKeys: 6 }),
    async (fields) => {
      const form = new FormData();
      for (const [name, [value, asFile]] of Object.entries(fields)) {
        if (asFile) form.append(name, new Blob([value]), "bom.json");
        else form.append(name, value);
      }
      const r = await server.rest("POST", "/api/v1/bom", { body: form });
      expectClearRest(r, `POST /api/v1/bom ${JSON.stringify(fields).slice(0, 200)}`);
      acceptToken(r);
    }), { numRuns, seed });
  // Malformed multipart bodies, and multipart without a boundary.
  for (const [headers, body] of [
    [{ "content-type": "multipart/form-data" }, "--x\r\n"],
    [{ "content-type": "multipart/form-data; boundary=x" }, "--x\r\ncontent-disposition: form-data; name=\"bom\"\r\n\r\n\u0000\ud800"],
    [{ "content-type": "multipart/form-data; boundary=x" }, "--x--"],
    [{ "content-type": "multipart/form-data; boundary=" + "b".repeat(5000) }, "garbage"],
  ] as const) {
    expectClearRest(await server.rest("POST", "/api/v1/bom", { headers, body }), `multipart ${JSON.stringify(headers)}`);
  }
  expectAlive();
  await expectWholeRuns();
});

test("REST token, analyze and v2 routes: hostile path parameters get 4xx", async () => {
  const segment = fc.oneof(uuidish.map(encodeURIComponent), fc.constantFrom("%", "%zz", "%00", "%ud800", "..", "%2F", "a/b", "%ED%A0%80", "%C0%80"));
  await fc.assert(fc.asyncProperty(segment, fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"), async (s, method) => {
    for (const path of [`/api/v1/bom/token/${s}`, `/api/v1/event/token/${s}`, `/api/v1/workflow/token/${s}/status`, `/api/v2/workflows/${s}`, `/api/v1/finding/project/${s}/analyze`, `/api/${s}`]) {
      const r = await server.rest(method, path);
      expectClearRest(r, `${method} ${path}`);
      if (path.endsWith("/analyze")) acceptToken(r);
    }
  }), { numRuns, seed });
  expectAlive();
  await expectWholeRuns();
});

test("explicit extremes: a very deep input, a huge input, NUL and lone surrogates through each door", async () => {
  // Too deep for JSON.stringify here (and for Postgres): written as text.
  const depth = 100_000;
  const deepText = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
  const huge = JSON.stringify({ blob: "x".repeat(12 * 1024 * 1024) });
  for (const inputText of [deepText, huge, '{"s":"\\u0000"}', '{"s":"\\ud800"}', '{"\\udfff":1}', '{"n":1e308}', '{"n":1e1000000}']) {
    const r = await server.graphqlRaw(`{"query":"mutation($input: StartRunInput!) { startRun(input: $input) { result { token } } }","variables":{"input":{"workflow":"test_dag","subject":"\\u0000","input":${inputText}}}}`);
    expectClearGraphql(r);
    const r2 = await server.graphqlRaw(`{"query":"mutation($input: StartRunInput!) { startRun(input: $input) { result { token } } }","variables":{"input":{"workflow":"test_dag","input":${inputText}}}}`);
    expectClearGraphql(r2);
    if (r2.body.data?.startRun?.result?.token) accepted.add(r2.body.data.startRun.result.token);
    const s = await db.pool.query("select token from throughline.start_run('test_dag', $1::jsonb)", [inputText]).then((x) => (accepted.add(x.rows[0].token), undefined), (e) => e);
    if (s) expectClearSqlError(s);
    const put = await server.rest("PUT", "/api/v1/bom", { headers: { "content-type": "application/json" }, body: JSON.stringify({ projectName: "p", bom: b64(inputText) }) });
    expectClearRest(put, "PUT a nasty BOM");
    acceptToken(put);
    const raw = await server.rest("PUT", "/api/v1/bom", { headers: { "content-type": "application/json" }, body: `{"projectName":"p","bom":${inputText}}` });
    expectClearRest(raw, "PUT a nasty body");
  }
  expectAlive();
  await expectWholeRuns();
}, 120_000);
