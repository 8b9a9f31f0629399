// `throughline webhooks …` as an operator runs it: a separate process against the database. Bad input
// is refused with the reason and exit code 2, and writes nothing; an unknown webhook exits 4.
import { expect, test } from "vitest";
import { spawnThroughline } from "../processes.ts";
import { startRunSql, useTestDatabase } from "../helpers.ts";

const db = useTestDatabase();

async function webhooks(...args: string[]): Promise<{ code: number | null; output: string }> {
  const p = spawnThroughline(["webhooks", ...args], { DATABASE_URL: db.url, LOG_LEVEL: "warn" });
  const { code } = await p.exited;
  return { code, output: p.output() };
}
const count = async () => (await db.pool.query("select count(*)::int as n from throughline.webhook")).rows[0].n;

test("bad input is refused with what was wrong, and nothing is written", async () => {
  const cases: [string[], RegExp][] = [
    [["create", "--url", "ftp://example.com/x", "--event", "RUN_FAILED"], /webhook url must be an absolute http:\/\/ or https:\/\/ URL/],
    [["create", "--url", "https://example.com/x", "--event", "RUN_EXPLODED"], /unknown webhook event "RUN_EXPLODED"; expected any of/],
    [["create", "--url", "https://example.com/x"], /needs --url and at least one --event/],
    [["create", "--url", "https://example.com/x", "--event", "RUN_FAILED", "--timeout", "soon"], /--timeout must be a number/],
    [["create", "--url", "https://example.com/x", "--event", "RUN_FAILED", "--timeout", "3600"], /webhook timeout must be more than 0 and at most 5 minutes/],
    [["create", "--url", "https://example.com/x", "--event", "RUN_FAILED", "--workflow", "nope"], /unknown workflow "nope"/],
    [["create", "--url", "https://example.com/x", "--event", "RUN_FAILED", "--subject", "a", "--subject", "b"], /one --subject at most/],
    [["deliveries", "abc"], /needs the webhook's id/],
    [["deliveries", "1", "--state", "LOST"], /--state must be PENDING, DELIVERED or FAILED/],
    [["frobnicate"], /use: webhooks create/],
  ];
  const results = await Promise.all(cases.map(([args]) => webhooks(...args)));
  cases.forEach(([args, message], i) => {
    expect(results[i].code, `${args.join(" ")}: ${results[i].output}`).toBe(2);
    expect(results[i].output).toMatch(message);
  });
  expect(await count()).toBe(0);
});

test("create, list, deliveries, disable, delete", async () => {
  const subject = "cli-hooks";
  const created = await webhooks("create", "--url", "https://ci.example.com/hooks", "--event", "RUN_COMPLETED", "--event", "RUN_FAILED",
    "--workflow", "test_single", "--subject", subject, "--timeout", "2.5", "--max-attempts", "4", "--description", "CI gate", "--json");
  expect(created.code, created.output).toBe(0);
  const { id, secret } = JSON.parse(created.output);
  expect(secret).toMatch(/^.{16,}$/);
  const row = (await db.pool.query("select timeout, max_attempts, description, secret from throughline.webhook where id = $1", [id])).rows[0];
  expect(row).toMatchObject({ max_attempts: 4, description: "CI gate", secret });
  expect(row.timeout).toMatchObject({ seconds: 2, milliseconds: 500 });

  const list = await webhooks("list", "--json");
  expect(list.code, list.output).toBe(0);
  expect(JSON.parse(list.output)).toEqual([expect.objectContaining({
    id, url: "https://ci.example.com/hooks", events: ["RUN_COMPLETED", "RUN_FAILED"], workflow: "test_single", subject, enabled: true,
  })]);
  const text = await webhooks("list");
  expect(text.output).toMatch(new RegExp(`^${id} +enabled +https://ci.example.com/hooks +RUN_COMPLETED,RUN_FAILED +workflow=test_single subject=${subject}`, "m"));

  const disabled = await webhooks("disable", id);
  expect([disabled.code, disabled.output.trim()]).toEqual([0, `webhook ${id} disabled`]);
  expect((await db.pool.query("select enabled from throughline.webhook where id = $1", [id])).rows[0].enabled).toBe(false);
  expect((await webhooks("enable", id)).code).toBe(0);
  expect((await webhooks("disable", "999999")).code).toBe(4);

  const deleted = await webhooks("delete", id);
  expect([deleted.code, deleted.output.trim()]).toEqual([0, `webhook ${id} deleted`]);
  const again = await webhooks("delete", id);
  expect([again.code, again.output.trim()]).toEqual([4, `no webhook ${id}`]);
  expect(await count()).toBe(0);
});

test("deliveries lists the outbox of one webhook, newest first, filtered by state", async () => {
  const subject = "cli-deliveries";
  const created = await webhooks("create", "--url", "https://ci.example.com/d", "--event", "RUN_CANCELLED", "--subject", subject, "--json");
  const { id } = JSON.parse(created.output);
  const first = await startRunSql(db.pool, "test_single", {}, { subject });
  const second = await startRunSql(db.pool, "test_single", {}, { subject });
  // No worker here: the runs end through SQL, and each writes its delivery to the outbox in the same
  // transaction, where it waits PENDING.
  for (const t of [first, second]) await db.pool.query("select throughline.cancel_run($1, 'stopped by the test')", [t]);

  const r = await webhooks("deliveries", id, "--json");
  expect(r.code, r.output).toBe(0);
  expect(JSON.parse(r.output).map((d: { token: string; event: string; state: string }) => [d.token, d.event, d.state]))
    .toEqual([[second, "RUN_CANCELLED", "PENDING"], [first, "RUN_CANCELLED", "PENDING"]]);
  expect(JSON.parse((await webhooks("deliveries", id, "--state", "FAILED", "--json")).output)).toEqual([]);
  expect(JSON.parse((await webhooks("deliveries", id, "--limit", "1", "--json")).output)).toHaveLength(1);
  const text = await webhooks("deliveries", id);
  expect(text.output).toMatch(new RegExp(`PENDING +RUN_CANCELLED +${second} +attempts 0/8`));
});
