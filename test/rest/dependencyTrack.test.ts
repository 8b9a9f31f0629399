// The Dependency-Track REST routes over real HTTP, compared byte for byte: status, content type and
// the exact body text. No worker runs here: step states are set through SQL (fixed timestamps), and
// the end-to-end file (dependencyTrack.e2e.test.ts) runs the workflows for real.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bom, startRunSql, useTestDatabase } from "../helpers.ts";
import { b64, call, putJson, startRestServer, type RestServer } from "./server.ts";

const db = useTestDatabase();
let server: RestServer;
let base: string;
beforeAll(async () => {
  server = await startRestServer(db.pool);
  base = server.url;
});
afterAll(async () => {
  await server?.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PROJECT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

async function tokenOf(answer: { status: number; contentType: string | null; body: string }): Promise<string> {
  expect(answer.status, answer.body).toBe(200);
  expect(answer.contentType).toBe("application/json");
  const m = /^\{"token":"([0-9a-f-]{36})"\}$/.exec(answer.body);
  expect(m, answer.body).not.toBeNull();
  expect(m![1]).toMatch(UUID);
  return m![1];
}

async function runOf(token: string) {
  const { rows } = await db.pool.query("select workflow, subject, input, labels, status from throughline.run where token = $1", [token]);
  return rows[0];
}

const validation = (errors: Array<{ message: string; path: string; invalidValue?: string }>) =>
  JSON.stringify(errors.map((e) => ({ message: e.message, messageTemplate: e.message, path: e.path, ...(e.invalidValue !== undefined ? { invalidValue: e.invalidValue } : {}) })));

describe("PUT /api/v1/bom (JSON, base64 BOM)", () => {
  test("starts a bom_upload run for the project UUID with the decoded BOM and answers its token", async () => {
    const text = JSON.stringify(bom.withComponents);
    const token = await tokenOf(await putJson(base, "/api/v1/bom", { project: PROJECT, bom: b64(text) }));
    expect(await runOf(token)).toEqual({
      workflow: "bom_upload", subject: PROJECT, input: { project: PROJECT, bom: text }, labels: { submittedVia: "dependency-track-api" }, status: "PENDING",
    });
  });

  test("projectName and projectVersion name the project as name@version; unknown fields are ignored", async () => {
    const token = await tokenOf(await putJson(base, "/api/v1/bom", {
      projectName: "  acme-web ", projectVersion: "1.2.3", autoCreate: true, isLatest: true, parentUUID: null, bom: b64("{}"),
    }));
    expect(await runOf(token)).toMatchObject({ subject: "acme-web@1.2.3", input: { project: "acme-web@1.2.3", bom: "{}" } });
  });

  test("a project UUID in capitals is accepted and stored in canonical lower case", async () => {
    const token = await tokenOf(await putJson(base, "/api/v1/bom", { project: PROJECT.toUpperCase(), bom: b64("{}") }));
    expect((await runOf(token)).subject).toBe(PROJECT);
  });

  test("base64 wrapped over lines (the base64 command's default) is accepted; a UTF-8 byte-order mark is dropped", async () => {
    const text = JSON.stringify(bom.empty);
    const wrapped = b64(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])).replace(/(.{76})/g, "$1\n");
    const token = await tokenOf(await putJson(base, "/api/v1/bom", { project: PROJECT, bom: wrapped }));
    expect((await runOf(token)).input.bom).toBe(text);
  });

  test("a BOM that decodes to garbage still starts a run (BOM_CONSUMPTION will fail it with the reason)", async () => {
    const token = await tokenOf(await putJson(base, "/api/v1/bom", { project: PROJECT, bom: b64(Buffer.from([0x00, 0xff, 0x7b])) }));
    expect((await runOf(token)).input.bom).toBe("\uFFFD\uFFFD{");
  });

  test("undecodable base64 → 400 naming the field", async () => {
    const a = await putJson(base, "/api/v1/bom", { project: PROJECT, bom: "not base64!" });
    expect([a.status, a.contentType, a.body]).toEqual([400, "application/json",
      '[{"message":"The BOM must be Base64 encoded","messageTemplate":"The BOM must be Base64 encoded","path":"bom","invalidValue":"not base64!"}]']);
  });

  test("an invalid project UUID → 400 with Dependency-Track's message", async () => {
    const a = await putJson(base, "/api/v1/bom", { project: "acme", bom: b64("{}") });
    expect([a.status, a.contentType, a.body]).toEqual([400, "application/json",
      validation([{ message: "The project must be a valid 36 character UUID", path: "project", invalidValue: "acme" }])]);
  });

  test("neither project nor projectName, and no bom → 400 listing both", async () => {
    const a = await putJson(base, "/api/v1/bom", { projectVersion: "1.0" });
    expect([a.status, a.contentType, a.body]).toEqual([400, "application/json",
      validation([{ message: "must not be null", path: "bom" }])]);
    const b = await putJson(base, "/api/v1/bom", { projectVersion: "1.0", bom: b64("{}") });
    expect([b.status, b.body]).toEqual([400, validation([{ message: "Either project (a UUID) or projectName (with projectVersion) must be given", path: "projectName" }])]);
  });

  test("fields of the wrong type → 400 per field", async () => {
    const a = await putJson(base, "/api/v1/bom", { project: 42, autoCreate: "yes", bom: b64("{}") });
    expect([a.status, a.body]).toEqual([400, validation([
      { message: "The project must be a valid 36 character UUID", path: "project", invalidValue: "42" },
      { message: "must be true or false", path: "autoCreate", invalidValue: "yes" },
    ])]);
  });

  test("a bom that is not a string → 400", async () => {
    const a = await putJson(base, "/api/v1/bom", { project: PROJECT, bom: 12 });
    expect([a.status, a.body]).toEqual([400, validation([{ message: "The BOM must be Base64 encoded", path: "bom", invalidValue: "12" }])]);
    const b = await putJson(base, "/api/v1/bom", { project: PROJECT, bom: null });
    expect([b.status, b.body]).toEqual([400, validation([{ message: "must not be null", path: "bom" }])]);
  });

  test("a body that is not a JSON object → 400", async () => {
    const a = await putJson(base, "/api/v1/bom", "[1, 2]");
    expect([a.status, a.contentType, a.body]).toEqual([400, "application/json", validation([{ message: "The request body must be a JSON object", path: "" }])]);
  });

  test("malformed JSON → 400 plain text saying where", async () => {
    const a = await putJson(base, "/api/v1/bom", '{"project": "x",\n "bom": }');
    expect([a.status, a.contentType, a.body]).toEqual([400, "text/plain; charset=utf-8", 'Malformed JSON at line 2, column 9: unexpected "}".']);
    const b = await putJson(base, "/api/v1/bom", "");
    expect([b.status, b.body]).toEqual([400, "Malformed JSON at line 1, column 1: unexpected end of input."]);
  });

  test("a wrong content type → 415", async () => {
    const a = await call(base, "PUT", "/api/v1/bom", { headers: { "content-type": "text/plain" }, body: "{}" });
    expect([a.status, a.contentType, a.body]).toEqual([415, "text/plain; charset=utf-8", "Unsupported Media Type: expected Content-Type application/json, got text/plain."]);
  });

  test("a body over maxBodyBytes → 413, declared or streamed", async () => {
    const big = JSON.stringify({ project: PROJECT, bom: "A".repeat(2 * 1024 * 1024) });
    const a = await putJson(base, "/api/v1/bom", big);
    expect([a.status, a.contentType, a.body]).toEqual([413, "text/plain; charset=utf-8", "Request body is larger than the 2097152 bytes this server accepts."]);
    const chunk = new TextEncoder().encode("A".repeat(64 * 1024));
    let sent = 0;
    let answered = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!answered && sent++ < 1024) controller.enqueue(chunk); // 64 MiB if the server kept reading
        else controller.close();
      },
    });
    const b = await call(base, "PUT", "/api/v1/bom", { headers: { "content-type": "application/json" }, body: stream }).catch((e) => e as Error);
    answered = true;
    // The server stops reading at the limit; the client sees the 413 (or, if it was still writing
    // when the socket closed, a reset) — never a success.
    if (!(b instanceof Error)) expect([b.status, b.body]).toEqual([413, "Request body is larger than the 2097152 bytes this server accepts."]);
    expect(sent).toBeLessThan(1024);
  });

  test("an input larger than the workflow accepts → 413 with start_run's reason, nothing written", async () => {
    const before = (await db.pool.query("select count(*)::int as n from throughline.run")).rows[0].n;
    const a = await putJson(base, "/api/v1/bom", { project: PROJECT, bom: b64("x".repeat(1100 * 1024)) });
    expect(a.status).toBe(413);
    expect(a.body).toMatch(/^run input is \d+ bytes, more than the 1048576 bytes workflow "bom_upload" accepts$/);
    expect((await db.pool.query("select count(*)::int as n from throughline.run")).rows[0].n).toBe(before);
  });
});

describe("POST /api/v1/bom (multipart/form-data)", () => {
  test("a BOM file part starts a bom_upload run with the file's text", async () => {
    const text = JSON.stringify(bom.withComponents, null, 2);
    const form = new FormData();
    form.append("project", PROJECT);
    form.append("bom", new Blob([text], { type: "application/json" }), "bom.json");
    const token = await tokenOf(await call(base, "POST", "/api/v1/bom", { body: form }));
    expect(await runOf(token)).toMatchObject({ workflow: "bom_upload", subject: PROJECT, input: { project: PROJECT, bom: text } });
  });

  test("projectName/projectVersion/autoCreate fields with the BOM as a text field", async () => {
    const form = new FormData();
    form.append("projectName", "acme-api");
    form.append("projectVersion", "2.0");
    form.append("autoCreate", "true");
    form.append("bom", '{"bomFormat": "CycloneDX"');
    const token = await tokenOf(await call(base, "POST", "/api/v1/bom", { body: form }));
    expect(await runOf(token)).toMatchObject({ subject: "acme-api@2.0", input: { project: "acme-api@2.0", bom: '{"bomFormat": "CycloneDX"' } });
  });

  test("no bom part → 400", async () => {
    const form = new FormData();
    form.append("project", PROJECT);
    const a = await call(base, "POST", "/api/v1/bom", { body: form });
    expect([a.status, a.contentType, a.body]).toEqual([400, "application/json", validation([{ message: "must not be null", path: "bom" }])]);
  });

  test("JSON sent to the multipart route → 415; a broken multipart body → 400", async () => {
    const a = await call(base, "POST", "/api/v1/bom", { headers: { "content-type": "application/json" }, body: "{}" });
    expect([a.status, a.body]).toEqual([415, "Unsupported Media Type: expected Content-Type multipart/form-data, got application/json."]);
    const b = await call(base, "POST", "/api/v1/bom", { headers: { "content-type": "multipart/form-data; boundary=xyz" }, body: "not multipart at all" });
    expect(b.status).toBe(400);
    expect(b.contentType).toBe("text/plain; charset=utf-8");
    expect(b.body).toMatch(/^Malformed multipart\/form-data body: /);
  });
});

describe("POST /api/v1/finding/project/{uuid}/analyze", () => {
  test("starts a reanalysis run for the project and answers its token", async () => {
    const token = await tokenOf(await call(base, "POST", `/api/v1/finding/project/${PROJECT}/analyze`));
    expect(await runOf(token)).toMatchObject({ workflow: "reanalysis", subject: PROJECT, input: { project: PROJECT } });
  });

  test("an invalid UUID → 400", async () => {
    const a = await call(base, "POST", "/api/v1/finding/project/not-a-uuid/analyze");
    expect([a.status, a.contentType, a.body]).toEqual([400, "application/json",
      '[{"message":"Invalid UUID","messageTemplate":"Invalid UUID","path":"uuid","invalidValue":"not-a-uuid"}]']);
  });
});

// A run whose steps carry fixed times and outcomes, written with triggers off (replica mode).
async function fixedRun(): Promise<string> {
  const token = await startRunSql(db.pool, "bom_upload", { project: "fixed", bom: "{" }, { subject: `fixed-${Math.random()}` });
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query("set local session_replication_role = replica");
    await client.query(`update throughline.step set status = 'FAILED', started_at = '2023-11-14 22:13:20.000999+00',
                          updated_at = '2023-11-14 22:13:20.123456+00', failure_reason = 'BOM is not valid JSON at line 1, column 2: unexpected end of input'
                        where token = $1 and step = 'BOM_CONSUMPTION'`, [token]);
    await client.query(`update throughline.step set status = 'CANCELLED', updated_at = '2023-11-14 22:13:20.123456+00',
                          status_reason = 'Upstream step BOM_CONSUMPTION failed'
                        where token = $1 and step <> 'BOM_CONSUMPTION'`, [token]);
    await client.query("commit");
  } finally {
    client.release();
  }
  return token;
}

describe("GET /api/v1/workflow/token/{uuid}/status", () => {
  test("golden: steps in id order, epoch milliseconds, startedAt and failureReason omitted when null", async () => {
    const token = await fixedRun();
    const a = await call(base, "GET", `/api/v1/workflow/token/${token}/status`);
    const cancelled = (step: string) => `{"token":"${token}","step":"${step}","status":"CANCELLED","updatedAt":1700000000123}`;
    expect([a.status, a.contentType, a.body]).toEqual([200, "application/json",
      `[{"token":"${token}","step":"BOM_CONSUMPTION","status":"FAILED","startedAt":1700000000000,"updatedAt":1700000000123,` +
        `"failureReason":"BOM is not valid JSON at line 1, column 2: unexpected end of input"},` +
        ["BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"].map(cancelled).join(",") + "]"]);
  });

  test("a fresh run: every step PENDING, updatedAt as stored", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "fresh" }, { subject: `fresh-${Math.random()}` });
    const { rows } = await db.pool.query("select step, floor(extract(epoch from updated_at) * 1000)::float8 as ms from throughline.step where token = $1 order by id", [token]);
    const a = await call(base, "GET", `/api/v1/workflow/token/${token}/status`);
    expect(a.body).toBe(JSON.stringify(rows.map((r) => ({ token, step: r.step, status: "PENDING", updatedAt: r.ms }))));
  });

  test("an unknown token → 404 plain text", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    const a = await call(base, "GET", `/api/v1/workflow/token/${unknown}/status`);
    expect([a.status, a.contentType, a.body]).toEqual([404, "text/plain; charset=utf-8", `Provided token ${unknown} does not exist.`]);
  });

  test("an invalid token → 400", async () => {
    const a = await call(base, "GET", "/api/v1/workflow/token/123/status");
    expect([a.status, a.body]).toEqual([400, '[{"message":"Invalid UUID","messageTemplate":"Invalid UUID","path":"uuid","invalidValue":"123"}]']);
  });
});

describe("GET /api/v1/bom/token/{uuid} and /api/v1/event/token/{uuid}", () => {
  test("processing true while steps are open, false once cancelled, false for an unknown token", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "poll" }, { subject: `poll-${Math.random()}` });
    for (const kind of ["bom", "event"]) {
      const a = await call(base, "GET", `/api/v1/${kind}/token/${token}`);
      expect([a.status, a.contentType, a.body]).toEqual([200, "application/json", '{"processing":true}']);
    }
    await db.pool.query("select throughline.cancel_run($1)", [token]);
    for (const kind of ["bom", "event"]) {
      expect((await call(base, "GET", `/api/v1/${kind}/token/${token}`)).body).toBe('{"processing":false}');
      const unknown = await call(base, "GET", `/api/v1/${kind}/token/00000000-0000-4000-8000-000000000000`);
      expect([unknown.status, unknown.body]).toEqual([200, '{"processing":false}']);
    }
  });

  test("an invalid token → 400", async () => {
    const a = await call(base, "GET", "/api/v1/event/token/abc");
    expect([a.status, a.body]).toEqual([400, '[{"message":"Invalid UUID","messageTemplate":"Invalid UUID","path":"uuid","invalidValue":"abc"}]']);
  });
});

describe("GET /api/v2/workflows/{token}", () => {
  test("golden: snake_case, epoch milliseconds, nulls kept", async () => {
    const token = await fixedRun();
    const a = await call(base, "GET", `/api/v2/workflows/${token}`);
    const cancelled = (step: string) => `{"token":"${token}","step":"${step}","status":"CANCELLED","started_at":null,"updated_at":1700000000123,"failure_reason":null}`;
    expect([a.status, a.contentType, a.body]).toEqual([200, "application/json",
      `{"states":[{"token":"${token}","step":"BOM_CONSUMPTION","status":"FAILED","started_at":1700000000000,"updated_at":1700000000123,` +
        `"failure_reason":"BOM is not valid JSON at line 1, column 2: unexpected end of input"},` +
        ["BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"].map(cancelled).join(",") + "]}"]);
  });

  test("unknown token → 404 and invalid token → 400, as problem details", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    const a = await call(base, "GET", `/api/v2/workflows/${unknown}`);
    expect([a.status, a.contentType, a.body]).toEqual([404, "application/problem+json",
      `{"status":404,"title":"Not Found","detail":"Provided token ${unknown} does not exist."}`]);
    const b = await call(base, "GET", "/api/v2/workflows/nope");
    expect([b.status, b.contentType, b.body]).toEqual([400, "application/problem+json",
      '{"status":400,"title":"Bad Request","detail":"The token \\"nope\\" in the path is not a valid UUID."}']);
  });
});

describe("routing", () => {
  test("unknown routes under /api/ → 404; wrong methods → 405 with Allow; other paths are left alone", async () => {
    const a = await call(base, "GET", "/api/v1/project");
    expect([a.status, a.contentType, a.body]).toEqual([404, "text/plain; charset=utf-8", "Not Found: no resource at /api/v1/project."]);
    const b = await call(base, "DELETE", "/api/v1/bom");
    expect([b.status, b.body, b.headers.get("allow")]).toEqual([405, "Method Not Allowed: /api/v1/bom accepts PUT, POST, not DELETE.", "PUT, POST"]);
    const c = await call(base, "POST", `/api/v1/event/token/${PROJECT}`);
    expect([c.status, c.headers.get("allow")]).toEqual([405, "GET"]);
    for (const path of ["/graphql", "/apix", "/"]) {
      expect((await call(base, "GET", path)).body).toBe("fallthrough");
    }
  });

  test("query strings do not change the route", async () => {
    const a = await call(base, "GET", "/api/v1/event/token/00000000-0000-4000-8000-000000000000?x=1");
    expect(a.body).toBe('{"processing":false}');
  });
});

describe("authenticate hook", () => {
  test("is asked with the route and permission; a refusal is answered before the body is read; the principal is recorded", async () => {
    const asked: unknown[] = [];
    const guarded = await startRestServer(db.pool, {
      authenticate: (req, route) => {
        asked.push({ key: req.headers["x-api-key"] ?? null, ...route });
        return req.headers["x-api-key"] === "good" ? { allow: true, principal: "ci-bot" } : { allow: false, status: 401 };
      },
    });
    try {
      const denied = await call(guarded.url, "PUT", "/api/v1/bom", { headers: { "content-type": "application/json" }, body: "{not even json" });
      expect([denied.status, denied.contentType, denied.body]).toEqual([401, "text/plain; charset=utf-8", "Unauthorized"]);
      const ok = await call(guarded.url, "PUT", "/api/v1/bom", { headers: { "content-type": "application/json", "x-api-key": "good" }, body: JSON.stringify({ project: PROJECT, bom: b64("{}") }) });
      const token = await tokenOf(ok);
      expect((await runOf(token)).labels).toEqual({ submittedVia: "dependency-track-api", triggeredBy: "ci-bot" });
      await call(guarded.url, "GET", `/api/v1/workflow/token/${token}/status`, { headers: { "x-api-key": "good" } });
      expect(asked).toEqual([
        { key: null, name: "bom.upload.json", permission: "BOM_UPLOAD", uuid: undefined },
        { key: "good", name: "bom.upload.json", permission: "BOM_UPLOAD", uuid: undefined },
        { key: "good", name: "workflow.status", permission: "BOM_UPLOAD", uuid: token },
      ]);
    } finally {
      await guarded.close();
    }
  });
});
