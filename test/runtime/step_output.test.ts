// A step whose output cannot be stored fails at once with the reason, instead of being taken for a
// lost worker (it used to wait out its lease on every attempt and end "Lease expired").
import { expect, test } from "vitest";
import { runEnded, startRunSql, stepsOf, useTestDatabase, useTestWorker } from "../helpers.ts";

const db = useTestDatabase();
useTestWorker(db);

test.each([
  ["nul", /^ONLY produced output the database refused: unsupported Unicode escape sequence \(\\u0000 cannot be converted to text\.\)$/],
  ["bigint", /ONLY produced output that cannot be stored as JSON: .*BigInt/],
])("output with %s: the step FAILS on its first attempt, saying why", async (badOutput, reason) => {
  const token = await startRunSql(db.pool, "test_single", { steps: { ONLY: { badOutput } } });
  expect(await runEnded(db.pool, token, 15_000)).toBe("FAILED");
  const { ONLY } = await stepsOf(db.pool, token);
  expect(ONLY).toMatchObject({ status: "FAILED", attempt: 1 });
  expect(ONLY.failure_reason).toMatch(reason);
  const attempts = await db.pool.query("select attempt, outcome from throughline.step_attempt where token = $1", [token]);
  expect(attempts.rows).toEqual([{ attempt: 1, outcome: "FAILED" }]);
});
