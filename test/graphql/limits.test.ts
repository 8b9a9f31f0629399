// Query depth and cost bounds (server/plugins/QueryLimitsPlugin.ts) through real HTTP and WebSocket
// requests: over-deep or over-costly operations are refused with a clear error before anything runs;
// ordinary queries and the explorer's introspection are unaffected.
import { describe, expect, test } from "vitest";
import { getIntrospectionQuery } from "graphql";
import { startRunSql, useTestDatabase } from "../helpers.ts";
import { useGraphqlServer } from "./graphqlHelpers.ts";

describe("GraphQL query limits", () => {
  const db = useTestDatabase();
  const gql = useGraphqlServer(db);

  test("a query nested deeper than 10 is refused, saying why", async () => {
    const deep = "{ runs { nodes { steps { nodes { parentStep { parentStep { parentStep { parentStep { parentStep { parentStep { parentStep { id } } } } } } } } } } } }";
    const r = await gql.query(deep);
    expect(r.data).toBeUndefined();
    expect(r.errors).toHaveLength(1);
    expect(r.errors![0].message).toMatch(/exceeds operation depth limits: .*depth/);
  });

  test("first above 1000 is refused, as a literal or a variable", async () => {
    const literal = await gql.query("{ runs(first: 100000) { nodes { token } } }");
    expect(literal.data).toBeUndefined();
    expect(literal.errors![0]).toMatchObject({
      message: "`first: 100000` on runs is more than this server allows (1000); ask for fewer and page with `after`.",
      extensions: { code: "FIRST_TOO_LARGE", limit: 1000 },
    });
    const variable = await gql.query("query($n: Int) { searchRuns(first: $n) { nodes { token } } }", { n: 5000 });
    expect(variable.errors![0].extensions).toMatchObject({ code: "FIRST_TOO_LARGE" });
    expect((await gql.query("query($n: Int) { searchRuns(first: $n) { nodes { token } } }", { n: 1000 })).errors).toBeUndefined();
  });

  test("nested lists whose sizes multiply past the cost bound are refused; a mutation in such an operation does not run", async () => {
    const costly = await gql.query("{ runs(first: 1000) { nodes { token steps(first: 1000) { nodes { id step } } } } }");
    expect(costly.data).toBeUndefined();
    expect(costly.errors![0].message).toMatch(/^This query could return about 2003002 objects, more than this server allows \(50000\)/);
    expect(costly.errors![0].extensions).toMatchObject({ code: "QUERY_TOO_COSTLY", cost: 2003002, limit: 50000 });
    // runs(1) + nodes(1) + 1000 × (token, steps, nodes) + 1000 × 1000 × (id, step)
    // lists without `first` count as 100 each
    const unbounded = await gql.query("{ runs { nodes { token events { nodes { seq kind step toStatus reason at } } } } }");
    expect(unbounded.errors![0].extensions).toMatchObject({ code: "QUERY_TOO_COSTLY", cost: 60302 }); // 1 + 1 + 100 × (token, events, nodes) + 100 × 100 × 6

    const before = (await db.pool.query("select count(*)::int as n from throughline.run")).rows[0].n;
    const mutation = await gql.query(`mutation { startRun(input: { workflow: "reanalysis", input: { project: "p" } }) {
      result { token } query { runs(first: 500) { nodes { steps(first: 500) { nodes { id } } } } } } }`);
    expect(mutation.errors![0].extensions).toMatchObject({ code: "QUERY_TOO_COSTLY" });
    expect((await db.pool.query("select count(*)::int as n from throughline.run")).rows[0].n).toBe(before);
  });

  test("ordinary queries, paging and the explorer's introspection are unaffected", async () => {
    const token = await startRunSql(db.pool, "bom_upload", { project: "p", bom: "{}" });
    const run = await gql.query(`query($t: UUID!) { run(token: $t) { token
      steps(orderBy: ID_ASC) { nodes { id step status parentStep { step } childSteps { nodes { step childSteps { nodes { step } } } } attempts { nodes { attempt } } } } } }`, { t: token });
    expect(run.errors).toBeUndefined();
    expect(run.data.run.steps.nodes).toHaveLength(6);
    const page = await gql.query("{ searchRuns(first: 2) { nodes { token } pageInfo { hasNextPage endCursor } } runs(first: 10) { totalCount nodes { token steps { totalCount } } } }");
    expect(page.errors).toBeUndefined();
    expect(page.data.searchRuns.nodes).toHaveLength(1);
    const introspection = await gql.query(getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }));
    expect(introspection.errors).toBeUndefined();
    expect(introspection.data.__schema.queryType.name).toBe("Query");
  });

  test("subscriptions are bounded too (over the WebSocket)", async () => {
    const client = gql.wsClient();
    const result = await new Promise<unknown>((resolve) => {
      client.subscribe({ query: "subscription { runsChanges(first: 5000) { cursor } }" }, { next: resolve, error: resolve, complete: () => {} });
    });
    expect(JSON.stringify(result)).toContain("FIRST_TOO_LARGE");
    const deep = await new Promise<unknown>((resolve) => {
      client.subscribe({ query: "subscription { runsChanges { runs { steps { step } } events { seq } cursor } }" }, {
        next: (m) => resolve(m), error: resolve, complete: () => {},
      });
    });
    expect(JSON.stringify(deep)).toContain('"cursor"');
  });
});
