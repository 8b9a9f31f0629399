// What a Dependency-Track CI plugin does, end to end against a real worker: upload, poll the token
// until processing is false, then read the workflow status.
import { afterAll, beforeAll, expect, test } from "vitest";
import { bom, useTestDatabase, useTestWorker, waitFor } from "../helpers.ts";
import { b64, call, putJson, startRestServer, type RestServer } from "./server.ts";

const db = useTestDatabase();
let server: RestServer;
useTestWorker(db);
beforeAll(async () => {
  server = await startRestServer(db.pool);
});
afterAll(async () => {
  await server?.close();
});

async function upload(project: string, bomText: string): Promise<string> {
  const a = await putJson(server.url, "/api/v1/bom", { project, bom: b64(bomText) });
  expect(a.status, a.body).toBe(200);
  return JSON.parse(a.body).token;
}

async function pollUntilDone(token: string) {
  await waitFor(async () => (await call(server.url, "GET", `/api/v1/event/token/${token}`)).body === '{"processing":false}', { what: `token ${token} to finish` });
  const status = await call(server.url, "GET", `/api/v1/workflow/token/${token}/status`);
  expect([status.status, status.contentType]).toEqual([200, "application/json"]);
  return JSON.parse(status.body) as Array<{ token: string; step: string; status: string; startedAt?: number; updatedAt: number; failureReason?: string }>;
}

test("upload → poll until processing is false → every step COMPLETED, then a re-analysis", async () => {
  const project = "8b9d3b8e-6f3c-4f5e-9a51-2f0c9f3a1e77";
  const token = await upload(project, JSON.stringify(bom.withComponents));
  // Never a premature "not processing": all steps exist from the first answer on.
  expect((await call(server.url, "GET", `/api/v1/bom/token/${token}`)).body).toMatch(/^\{"processing":(true|false)\}$/);
  const steps = await pollUntilDone(token);
  expect(steps.map((s) => [s.step, s.status])).toEqual([
    ["BOM_CONSUMPTION", "COMPLETED"], ["BOM_PROCESSING", "COMPLETED"], ["VULN_ANALYSIS", "COMPLETED"],
    ["REPO_META_ANALYSIS", "COMPLETED"], ["POLICY_EVALUATION", "COMPLETED"], ["METRICS_UPDATE", "COMPLETED"],
  ]);
  for (const s of steps) {
    expect(s.token).toBe(token);
    expect(typeof s.startedAt).toBe("number");
    expect(s.updatedAt).toBeGreaterThanOrEqual(s.startedAt!);
    expect(s).not.toHaveProperty("failureReason");
  }
  const v2 = JSON.parse((await call(server.url, "GET", `/api/v2/workflows/${token}`)).body);
  expect(v2.states.map((s: { status: string }) => s.status)).toEqual(steps.map((s) => s.status));

  const analyze = await call(server.url, "POST", `/api/v1/finding/project/${project}/analyze`);
  const again = await pollUntilDone(JSON.parse(analyze.body).token);
  expect(again.map((s) => [s.step, s.status])).toEqual([["VULN_ANALYSIS", "COMPLETED"], ["POLICY_EVALUATION", "COMPLETED"], ["METRICS_UPDATE", "COMPLETED"]]);
});

test("a malformed BOM uploaded as a multipart file: BOM_CONSUMPTION FAILED with the reason, the rest CANCELLED", async () => {
  const form = new FormData();
  form.append("projectName", "broken");
  form.append("projectVersion", "1.0");
  form.append("bom", new Blob(['{"bomFormat": "CycloneDX",\n  "components": [}']), "bom.json");
  const a = await call(server.url, "POST", "/api/v1/bom", { body: form });
  expect(a.status, a.body).toBe(200);
  const steps = await pollUntilDone(JSON.parse(a.body).token);
  expect(steps[0]).toMatchObject({ step: "BOM_CONSUMPTION", status: "FAILED", failureReason: 'BOM is not valid JSON at line 2, column 18: unexpected "}"' });
  expect(steps.slice(1).map((s) => s.status)).toEqual(["CANCELLED", "CANCELLED", "CANCELLED", "CANCELLED", "CANCELLED"]);
  for (const s of steps.slice(1)) expect(s).not.toHaveProperty("startedAt");
});

test("an empty BOM: analyses NOT_APPLICABLE, metrics COMPLETED, and polling ends", async () => {
  const steps = await pollUntilDone(await upload("0d1f6c3a-2b7e-4c1d-8e9f-a0b1c2d3e4f5", JSON.stringify(bom.empty)));
  expect(steps.map((s) => s.status)).toEqual(["COMPLETED", "COMPLETED", "NOT_APPLICABLE", "NOT_APPLICABLE", "NOT_APPLICABLE", "COMPLETED"]);
});
