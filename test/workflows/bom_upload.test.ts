// The reference workflows end to end with a real worker: normal, malformed and empty BOMs,
// re-analysis, and one run per project at a time.
import { describe, expect, test } from "vitest";
import { bom, runEnded, startRunSql, stepsOf, useTestDatabase, useTestWorker } from "../helpers.ts";

const db = useTestDatabase();
useTestWorker(db);

describe("bom_upload", () => {
  test("a BOM with components completes every step and records components, findings and metrics", async () => {
    const token = await startRunSql(db.pool, "bom_upload", { project: "acme-web", bom: bom.withComponents });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    const steps = await stepsOf(db.pool, token);
    expect(Object.fromEntries(Object.entries(steps).map(([k, s]) => [k, s.status]))).toEqual({
      BOM_CONSUMPTION: "COMPLETED", BOM_PROCESSING: "COMPLETED", VULN_ANALYSIS: "COMPLETED",
      REPO_META_ANALYSIS: "COMPLETED", POLICY_EVALUATION: "COMPLETED", METRICS_UPDATE: "COMPLETED",
    });
    const components = await db.pool.query("select name, version, purl from throughline.component where project = 'acme-web' order by ordinal");
    expect(components.rows.map((r) => r.name)).toEqual(["log4j-core", "lodash", "left-pad", "internal-thing"]);
    expect(steps.VULN_ANALYSIS.output).toMatchObject({
      analyzed: 4,
      findings: [
        { advisory: "CVE-2021-44228", severity: "CRITICAL" },
        { advisory: "CVE-2021-23337", severity: "HIGH" },
      ],
    });
    expect(steps.REPO_META_ANALYSIS.output).toEqual({ analyzed: 4, repositories: { maven: 1, npm: 2 }, withoutPurl: 1 });
    expect(steps.POLICY_EVALUATION.output).toMatchObject({ findings: 2, critical: 1 });
    const metrics = await db.pool.query("select components, vulnerabilities, critical, policy_violations from throughline.project_metrics where project = 'acme-web'");
    expect(metrics.rows[0]).toEqual({ components: 4, vulnerabilities: 2, critical: 1, policy_violations: 1 });
    expect((await db.pool.query("select throughline.is_processing($1) as p", [token])).rows[0].p).toBe(false);
  });

  test("a malformed BOM fails BOM_CONSUMPTION with what and where, and cancels everything after it", async () => {
    const token = await startRunSql(db.pool, "bom_upload", { project: "broken", bom: '{"bomFormat": "CycloneDX",\n  "specVersion": "1.5",\n  "components": [\n    {"type": "library", "name": }\n  ]\n}' });
    expect(await runEnded(db.pool, token)).toBe("FAILED");
    const steps = await stepsOf(db.pool, token);
    expect(steps.BOM_CONSUMPTION.status).toBe("FAILED");
    expect(steps.BOM_CONSUMPTION.failure_reason).toMatch(/^BOM is not valid JSON/);
    expect(steps.BOM_CONSUMPTION.failure_reason).toBe(`BOM is not valid JSON at line 4, column 33: unexpected "}"`);
    expect(steps.BOM_CONSUMPTION.attempt).toBe(1); // terminal: not retried
    for (const name of ["BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]) {
      expect(steps[name].status).toBe("CANCELLED");
    }
  });

  test("a document that is JSON but not CycloneDX fails with the path of each problem", async () => {
    const token = await startRunSql(db.pool, "bom_upload", {
      project: "wrong-shape",
      bom: { bomFormat: "SPDX", specVersion: "1.5", components: [{ type: "library", name: "ok" }, { type: "library", version: "1" }] },
    });
    expect(await runEnded(db.pool, token)).toBe("FAILED");
    const reason = (await stepsOf(db.pool, token)).BOM_CONSUMPTION.failure_reason!;
    expect(reason).toMatch(/^BOM is not a valid CycloneDX document/);
    expect(reason).toContain('bomFormat: bomFormat must be "CycloneDX"');
    expect(reason).toContain("components[1].name");
  });

  test("a BOM without components makes the analyses and policy NOT_APPLICABLE while metrics complete", async () => {
    const token = await startRunSql(db.pool, "bom_upload", { project: "empty-project", bom: bom.empty });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    const steps = await stepsOf(db.pool, token);
    expect(Object.fromEntries(Object.entries(steps).map(([k, s]) => [k, s.status]))).toEqual({
      BOM_CONSUMPTION: "COMPLETED", BOM_PROCESSING: "COMPLETED", VULN_ANALYSIS: "NOT_APPLICABLE",
      REPO_META_ANALYSIS: "NOT_APPLICABLE", POLICY_EVALUATION: "NOT_APPLICABLE", METRICS_UPDATE: "COMPLETED",
    });
    expect(steps.VULN_ANALYSIS.status_reason).toBe("The project has no components to analyse");
    expect(steps.METRICS_UPDATE.output).toEqual({ components: 0, vulnerabilities: 0, critical: 0, policyViolations: 0 });
  });

  test("input the workflow cannot use fails the first step with the field at fault", async () => {
    const token = await startRunSql(db.pool, "bom_upload", { project: 42, bom: bom.empty });
    expect(await runEnded(db.pool, token)).toBe("FAILED");
    const reason = (await stepsOf(db.pool, token)).BOM_CONSUMPTION.failure_reason!;
    expect(reason).toMatch(/Invalid run input for BOM_CONSUMPTION/);
    expect(reason).toMatch(/project/);
  });

  test("runs of one project are processed one at a time, in submission order", async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push(await startRunSql(db.pool, "bom_upload", { project: "busy-project", bom: bom.withComponents }));
    const waiting = await db.pool.query("select token, admitted_at is not null as admitted, status from throughline.run where token = any($1) order by created_at", [tokens]);
    expect(waiting.rows.map((r) => r.admitted)).toEqual([true, false, false]);
    expect(waiting.rows.every((r) => r.status === "PENDING")).toBe(true); // waiting runs are "processing"
    for (const t of tokens) expect(await runEnded(db.pool, t)).toBe("COMPLETED");
    // From the event log: each run was admitted only after the one before it ended.
    const { rows } = await db.pool.query(
      "select token, kind, seq from throughline.event where token = any($1) and kind in ('RUN_ADMITTED', 'RUN_ENDED') order by seq", [tokens]);
    expect(rows.map((r) => `${tokens.indexOf(r.token)}:${r.kind}`)).toEqual([
      "0:RUN_ADMITTED", "0:RUN_ENDED", "1:RUN_ADMITTED", "1:RUN_ENDED", "2:RUN_ADMITTED", "2:RUN_ENDED"]);
  });
});

describe("reanalysis", () => {
  test("re-analyses the components a project already has", async () => {
    const upload = await startRunSql(db.pool, "bom_upload", { project: "reanalysed", bom: bom.withComponents });
    await runEnded(db.pool, upload);
    const token = await startRunSql(db.pool, "reanalysis", { project: "reanalysed" });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    const steps = await stepsOf(db.pool, token);
    expect(Object.keys(steps)).toEqual(["VULN_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"]);
    expect(steps.POLICY_EVALUATION.output).toMatchObject({ critical: 1 });
  });

  test("a project without components has nothing to analyse", async () => {
    const token = await startRunSql(db.pool, "reanalysis", { project: "never-uploaded" });
    expect(await runEnded(db.pool, token)).toBe("COMPLETED");
    const steps = await stepsOf(db.pool, token);
    expect(steps.VULN_ANALYSIS.status).toBe("NOT_APPLICABLE");
    expect(steps.METRICS_UPDATE.status).toBe("COMPLETED");
  });
});
