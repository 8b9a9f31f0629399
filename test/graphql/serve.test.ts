// `throughline serve`: the server alone (no worker) against an existing database; GraphQL answers on
// the printed address and SIGTERM stops it cleanly.
import { expect, test } from "vitest";
import { spawnThroughline } from "../processes.ts";
import { createApiKey } from "../../src/db/apiKeys.ts";
import { startRunSql, useTestDatabase } from "../helpers.ts";

const db = useTestDatabase();

test("serve answers GraphQL on the address it prints and stops on SIGTERM", async () => {
  const token = await startRunSql(db.pool, "test_single", {});
  const app = spawnThroughline(["serve"], { DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1" });
  try {
    await app.waitForOutput(/GraphQL: +http:\/\/\S+\/graphql/, 60_000);
    expect(app.output()).toMatch(/Worker: +not started/);
    const url = /GraphQL: +(http:\/\/\S+\/graphql)/.exec(app.output())![1];
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": (await createApiKey(db.pool, { name: "serve-test", role: "reader" })).apiKey },
      body: JSON.stringify({ query: "query($t: UUID!) { isProcessing(token: $t) run(token: $t) { workflow } }", variables: { t: token } }),
    });
    expect(await res.json()).toEqual({ data: { isProcessing: true, run: { workflow: "test_single" } } });
  } finally {
    app.kill("SIGTERM");
  }
  expect((await app.exited).code).toBe(0);
});
