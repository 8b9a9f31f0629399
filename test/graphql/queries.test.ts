// GraphQL over real HTTP: runs by token with their step tree, run search, isProcessing, workflow
// definitions, the three mutations and the messages their errors carry, and what is not exposed.
import { describe, expect, test } from "vitest";
import { GraphQLError } from "postgraphile/graphql";
import { makeMaskError } from "../../server/maskError.ts";
import { runEnded, startTestWorker, testLog, useTestDatabase, waitFor } from "../helpers.ts";
import { useGraphqlServer } from "./graphqlHelpers.ts";

const startRun = `mutation($input: StartRunInput!) { startRun(input: $input) { result { token workflow status subject labels } } }`;

describe("GraphQL queries and mutations", () => {
  const db = useTestDatabase();
  const gql = useGraphqlServer(db);

  async function start(input: Record<string, unknown>): Promise<string> {
    const r = await gql.query(startRun, { input });
    expect(r.errors).toBeUndefined();
    return r.data.startRun.result.token;
  }

  test("startRun creates a run whose steps and hyades tree are readable by token", async () => {
    const r = await gql.query(startRun, { input: { workflow: "test_dag", input: {}, subject: "proj-1", labels: { branch: "main" } } });
    expect(r.errors).toBeUndefined();
    const run = r.data.startRun.result;
    expect(run).toMatchObject({ workflow: "test_dag", status: "PENDING", subject: "proj-1", labels: { branch: "main" } });

    const q = await gql.query(`query($token: UUID!) {
      run(token: $token) { token status stepsTotal definition { name }
        steps(orderBy: ID_ASC) { nodes { id step status parentStep { step } childSteps { nodes { step } } } } }
      isProcessing(token: $token) }`, { token: run.token });
    expect(q.errors).toBeUndefined();
    expect(q.data.isProcessing).toBe(true);
    expect(q.data.run).toMatchObject({ token: run.token, status: "PENDING", stepsTotal: 6, definition: { name: "test_dag" } });
    const steps = q.data.run.steps.nodes;
    expect(steps.map((s: any) => `${s.parentStep?.step ?? "-"}>${s.step}`)).toEqual([
      "->BOM_CONSUMPTION", "BOM_CONSUMPTION>BOM_PROCESSING", "BOM_PROCESSING>VULN_ANALYSIS",
      "BOM_PROCESSING>REPO_META_ANALYSIS", "VULN_ANALYSIS>POLICY_EVALUATION", "POLICY_EVALUATION>METRICS_UPDATE"]);
    expect(steps[1].childSteps.nodes.map((s: any) => s.step).sort()).toEqual(["REPO_META_ANALYSIS", "VULN_ANALYSIS"]);
    expect(steps.every((s: any) => typeof s.id === "string" && s.status === "PENDING")).toBe(true);
  });

  test("an unknown token reads as no run and not processing", async () => {
    const token = "00000000-0000-4000-8000-000000000000";
    const q = await gql.query(`query($token: UUID!) { run(token: $token) { token } isProcessing(token: $token) }`, { token });
    expect(q).toEqual({ data: { run: null, isProcessing: false } });
  });

  test("searchRuns filters by workflow, status, subject, labels and time, and paginates", async () => {
    const before = (await db.pool.query("select clock_timestamp() as t")).rows[0].t.toISOString();
    const a = await start({ workflow: "test_single", input: {}, subject: "search-a", labels: { team: "red", ci: "yes" } });
    const b = await start({ workflow: "test_single", input: {}, subject: "search-b", labels: { team: "blue" } });
    const c = await start({ workflow: "test_dag", input: {}, subject: "search-a", labels: { team: "red" } });
    await gql.query(`mutation($t: UUID!) { cancelRun(input: {token: $t}) { result { status } } }`, { t: b });
    const search = async (args: string) => {
      const r = await gql.query(`{ searchRuns(${args}) { totalCount nodes { token } pageInfo { hasNextPage endCursor } } }`);
      expect(r.errors).toBeUndefined();
      return r.data.searchRuns;
    };
    const tokens = async (args: string) => (await search(args)).nodes.map((n: any) => n.token);
    expect(await tokens(`workflow: "test_single", subject: "search-a"`)).toEqual([a]);
    expect(await tokens(`subject: "search-a"`)).toEqual([c, a]); // newest first
    expect(await tokens(`labels: {team: "red"}, subject: "search-a"`)).toEqual([c, a]);
    expect(await tokens(`labels: {team: "red", ci: "yes"}`)).toEqual([a]);
    expect(await tokens(`status: "CANCELLED", workflow: "test_single", createdAfter: "${before}"`)).toEqual([b]);
    expect(await tokens(`createdAfter: "${before}", createdBefore: "${before}"`)).toEqual([]);
    const page1 = await search(`createdAfter: "${before}", first: 2`);
    expect(page1.totalCount).toBe(3);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page2 = await search(`createdAfter: "${before}", first: 2, after: "${page1.pageInfo.endCursor}"`);
    expect([...page1.nodes, ...page2.nodes].map((n: any) => n.token)).toEqual([c, b, a]);
  });

  test("workflow definitions are readable with their steps", async () => {
    const r = await gql.query(`{ workflow(name: "test_dag") { name version serializeBySubject steps(orderBy: POSITION_ASC) { nodes { step dependsOn maxAttempts } } } workflows { nodes { name } } }`);
    expect(r.errors).toBeUndefined();
    expect(r.data.workflow.steps.nodes.map((s: any) => s.step)).toContain("POLICY_EVALUATION");
    expect(r.data.workflow.steps.nodes.find((s: any) => s.step === "POLICY_EVALUATION").dependsOn).toEqual(["VULN_ANALYSIS", "REPO_META_ANALYSIS"]);
    expect(r.data.workflows.nodes.map((w: any) => w.name)).toEqual(expect.arrayContaining(["bom_upload", "reanalysis", "test_dag", "test_single"]));
  });

  test("startRun errors reach the client with their message and code", async () => {
    const unknown = await gql.query(startRun, { input: { workflow: "nope", input: {} } });
    expect(unknown.data?.startRun ?? null).toBeNull();
    expect(unknown.errors![0].message).toBe('unknown workflow "nope"');
    expect(unknown.errors![0].extensions).toMatchObject({ code: "TL404", kind: "not_found" });
    expect(unknown.errors![0].extensions!.hint).toMatch(/Registered workflows: .*test_dag/);

    const notObject = await gql.query(startRun, { input: { workflow: "test_single", input: [1, 2] } });
    expect(notObject.errors![0]).toMatchObject({ message: "run input must be a JSON object, got array", extensions: { code: "TL422" } });

    const badLabels = await gql.query(startRun, { input: { workflow: "test_single", input: {}, labels: "x" } });
    expect(badLabels.errors![0]).toMatchObject({ message: "labels must be a JSON object", extensions: { code: "TL422" } });

    // The test template registers workflows with a 1 MiB input limit.
    const big = await gql.query(startRun, { input: { workflow: "test_single", input: { blob: "x".repeat(1024 * 1024 + 10) } } });
    expect(big.errors![0].message).toMatch(/^run input is \d+ bytes, more than the 1048576 bytes workflow "test_single" accepts$/);
    expect(big.errors![0].extensions).toMatchObject({ code: "TL413", kind: "too_large" });

    const token = "11111111-1111-4111-8111-111111111111";
    await start({ workflow: "test_single", input: { a: 1 }, token });
    const reused = await gql.query(startRun, { input: { workflow: "test_single", input: { a: 2 }, token } });
    expect(reused.errors![0]).toMatchObject({ message: `token ${token} was already used for a different submission`, extensions: { code: "TL409" } });

    const badUuid = await gql.query(startRun, { input: { workflow: "test_single", input: {}, token: "not-a-uuid" } });
    expect(badUuid.errors![0].message).toMatch(/uuid/i);
    // nothing of the refused submissions was written
    const { rows } = await db.pool.query("select count(*)::int as n from throughline.run where workflow = 'nope' or input ? 'blob'");
    expect(rows[0].n).toBe(0);
  });

  test("cancelRun cancels the open steps; unknown tokens are a clear 404", async () => {
    const token = await start({ workflow: "test_dag", input: {} });
    const r = await gql.query(`mutation($t: UUID!) { cancelRun(input: {token: $t, reason: "not needed"}) { result { status isProcessing: stepsOpen steps { nodes { status statusReason } } } } }`, { t: token });
    expect(r.errors).toBeUndefined();
    expect(r.data.cancelRun.result.status).toBe("CANCELLED");
    expect(r.data.cancelRun.result.steps.nodes.every((s: any) => s.status === "CANCELLED" && s.statusReason === "not needed")).toBe(true);

    const missing = await gql.query(`mutation { cancelRun(input: {token: "22222222-2222-4222-8222-222222222222"}) { result { status } } }`);
    expect(missing.errors![0]).toMatchObject({ message: "Provided token 22222222-2222-4222-8222-222222222222 does not exist.", extensions: { code: "TL404" } });
  });

  test("retryStep reopens a failed step and its downstream, and the run completes", async () => {
    const worker = await startTestWorker(db.pool);
    try {
      const token = await start({ workflow: "test_dag", input: { steps: { VULN_ANALYSIS: { fail: "terminal", failAttempts: 1 } } } });
      expect(await runEnded(db.pool, token)).toBe("FAILED");
      const all = await gql.query(`query($t: UUID!) { run(token: $t) { steps { nodes { id step status failureReason } } } }`, { t: token });
      expect(all.errors).toBeUndefined();
      const step = all.data.run.steps.nodes.find((s: any) => s.status === "FAILED");
      expect(step).toMatchObject({ step: "VULN_ANALYSIS", failureReason: "VULN_ANALYSIS failed on attempt 1 as the test asked" });

      const completed = all.data.run.steps.nodes.find((s: any) => s.step === "BOM_CONSUMPTION");
      const refused = await gql.query(`mutation($id: BigInt!) { retryStep(input: {stepId: $id}) { result { status } } }`, { id: completed.id });
      expect(refused.errors![0].message).toBe(`step BOM_CONSUMPTION of run ${token} is COMPLETED; only FAILED or CANCELLED steps can be retried`);
      expect(refused.errors![0].extensions).toMatchObject({ code: "TL409" });

      const retried = await gql.query(`mutation($id: BigInt!) { retryStep(input: {stepId: $id, reason: "flaky"}) { result { status } } }`, { id: step.id });
      expect(retried.errors).toBeUndefined();
      expect(retried.data.retryStep.result.status).toBe("PENDING");
      expect(await runEnded(db.pool, token)).toBe("COMPLETED");
      const done = await waitFor(async () => {
        const q = await gql.query(`query($t: UUID!) { isProcessing(token: $t) run(token: $t) { steps { nodes { step status attempts { totalCount } retries { nodes { reason } } } } } }`, { t: token });
        return q.data.isProcessing === false ? q.data : undefined;
      });
      const vuln = done.run.steps.nodes.find((s: any) => s.step === "VULN_ANALYSIS");
      expect(vuln).toMatchObject({ status: "COMPLETED", attempts: { totalCount: 2 }, retries: { nodes: [{ reason: "flaky" }] } });
    } finally {
      await worker.stop();
    }
  });

  test("only the public API is exposed: no graphile_worker, no internal functions or tables", async () => {
    const r = await gql.query(`{ __schema { types { name fields { name } } queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }`);
    expect(r.errors).toBeUndefined();
    const schema = r.data.__schema;
    expect(schema.mutationType.fields.map((f: any) => f.name).sort()).toEqual(["cancelRun", "retryStep", "startRun"]);
    expect(schema.subscriptionType.fields.map((f: any) => f.name).sort()).toEqual(["runChanges", "runsChanges"]);
    const everything = JSON.stringify(schema).toLowerCase();
    for (const hidden of ["job", "graphile", "beginstep", "completestep", "failstep", "heartbeatsteps", "purgeruns",
      "timeoutsteps", "reclaim", "registerworkflow", "enqueue", "changesafter", "eventsafter", "runssnapshot", "currentcursor",
      "admitrun", "admitnextrun", "lockrun", "apikey", "workflowstate"]) {
      expect(everything, hidden).not.toContain(hidden);
    }
    const queryFields = schema.queryType.fields.map((f: any) => f.name);
    expect(queryFields).toEqual(expect.arrayContaining(["run", "runs", "searchRuns", "isProcessing", "workflow", "workflows", "step"]));
  });

  test("the explorer is served, and descriptions come from the SQL comments", async () => {
    const page = await fetch(`${gql.server.url}/graphiql`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/ruru/i);
    const r = await gql.query(`{ __type(name: "Run") { description fields { name description } } }`);
    expect(r.data.__type.description).toMatch(/One workflow run/);
    expect(r.data.__type.fields.find((f: any) => f.name === "token").description).toMatch(/identity/);
    const m = await gql.query(`{ __schema { mutationType { fields { name description } } } __type(name: "Event") { fields { name } } }`);
    expect(m.data.__schema.mutationType.fields.find((f: any) => f.name === "startRun").description).toMatch(/^Starts a run of a workflow/);
    expect(m.data.__type.fields.map((f: any) => f.name)).not.toContain("xid");
  });

  test("errors that are not ours are masked for the client and logged", () => {
    const logged: unknown[] = [];
    const log = { ...testLog, error: (obj: unknown) => logged.push(obj) } as unknown as typeof testLog;
    const mask = makeMaskError(log);
    const internal = Object.assign(new Error('duplicate key value violates unique constraint "secret_idx"'), { code: "23505" });
    const masked = mask(new GraphQLError(internal.message, { originalError: internal, path: ["startRun"] }));
    expect(masked.message).toMatch(/^Internal error \(id [0-9a-f-]+\)/);
    expect(masked.message).not.toContain("secret");
    expect(masked.path).toEqual(["startRun"]);
    expect(logged).toHaveLength(1);
    const ours = Object.assign(new Error("unknown workflow \"x\""), { code: "TL404", hint: "Registered workflows: a" });
    expect(mask(new GraphQLError(ours.message, { originalError: ours })).extensions).toMatchObject({ code: "TL404", hint: "Registered workflows: a" });
  });
});
