// Subscribers joining while the runs they follow are being worked on, many at a time (500 CI jobs
// each waiting for their own token): every one receives its run's state and then every later
// transition exactly once, up to the run's end.
//
// Regression: subscribers arriving together at an idle hub each asked for a fresh cursor, and a
// renewal that ran after the first of them had registered moved the hub's cursor past changes that
// subscriber still needed; 21 of 300 never heard of their run again.
import { expect, test } from "vitest";
import { startChangeHub, type ChangesMessage } from "../../server/changes/changeHub.ts";
import { testLog, useTestDatabase, useTestWorker } from "../helpers.ts";

const db = useTestDatabase();
useTestWorker(db);

interface Followed {
  token: string;
  cursor?: string;
  seqs: string[];
  ended: boolean;
}

test("300 subscribers joining mid-run, 30 at a time: each gets every transition after its state exactly once", async () => {
  const hub = await startChangeHub({ pool: db.pool, connectionString: db.url, log: testLog, pollIntervalMs: 50 });
  try {
    const follow = async (token: string): Promise<Followed> => {
      const sub = await hub.subscribe({ token });
      const f: Followed = { token, seqs: [], ended: false };
      const deadline = Date.now() + 30_000;
      try {
        while (!f.ended) {
          const r = await Promise.race([sub.next(), new Promise<undefined>((res) => setTimeout(res, Math.max(0, deadline - Date.now())))]);
          if (!r) break; // timed out: f.ended stays false
          const m = r.value as ChangesMessage;
          if (m.runs) {
            f.cursor = m.cursor;
            f.ended = (m.runs[0] as { status: string }).status !== "PENDING";
          } else {
            f.seqs.push(...m.events.map((e) => e.seq));
            f.ended = m.events.some((e) => e.kind === "RUN_ENDED");
          }
        }
      } finally {
        await sub.return!();
      }
      return f;
    };
    const followers: Promise<Followed>[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const { rows } = await db.pool.query("select (throughline.start_run('test_dag', '{}'::jsonb)).token::text as token from generate_series(1, 30)");
      for (const r of rows) followers.push(follow(r.token));
      await new Promise((r) => setTimeout(r, 20));
    }
    const results = await Promise.all(followers);
    expect(results.filter((f) => !f.ended).map((f) => f.token)).toEqual([]);

    // What each should have received: its run's events not visible in the state's cursor, in order.
    const { rows } = await db.pool.query(
      `select f.token, coalesce(array_agg(e.seq::text order by e.seq) filter (where e.seq is not null), '{}') as seqs
         from jsonb_to_recordset($1::jsonb) as f(token uuid, cursor text)
         left join throughline.event e on e.token = f.token and not pg_visible_in_snapshot(e.xid, f.cursor::pg_snapshot)
        group by f.token`,
      [JSON.stringify(results.map((f) => ({ token: f.token, cursor: f.cursor })))]);
    const expected = new Map(rows.map((r) => [r.token as string, r.seqs as string[]]));
    const wrong = results.filter((f) => JSON.stringify(f.seqs) !== JSON.stringify(expected.get(f.token)));
    expect(wrong.map((f) => ({ token: f.token, got: f.seqs, expected: expected.get(f.token) }))).toEqual([]);
  } finally {
    await hub.close();
  }
}, 90_000);
