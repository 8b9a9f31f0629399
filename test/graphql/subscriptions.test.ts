// Change subscriptions over a real WebSocket (graphql-ws): the first message carries the state and a
// cursor, later ones every transition; a client that disconnects mid-run and resumes from its cursor
// receives exactly what it missed — no gap, no duplicate — checked against the event log itself.
import { describe, expect, test } from "vitest";
import type { Client } from "graphql-ws";
import { runEnded, startTestWorker, stepsOf, useTestDatabase, waitFor } from "../helpers.ts";
import { useGraphqlServer } from "./graphqlHelpers.ts";

const fields = `cursor
  runs { token workflow subject status isProcessing steps { id parentStepId step status attempt } }
  events { seq token workflow subject stepId step kind fromStatus toStatus attempt reason at }`;
const runChanges = `subscription($token: UUID!, $after: String) { runChanges(token: $token, after: $after) { ${fields} } }`;
const runsChanges = `subscription($workflow: String, $subject: String, $after: String) {
  runsChanges(workflow: $workflow, subject: $subject, after: $after) { ${fields} } }`;

interface Message {
  cursor: string;
  runs: any[] | null;
  events: { seq: string; token: string; kind: string; step: string | null; toStatus: string | null; workflow: string; subject: string | null }[];
}

/** Reads a subscription message by message, failing clearly instead of hanging. */
function subscribe(client: Client, query: string, variables: Record<string, unknown>) {
  const iterator = client.iterate<any>({ query, variables });
  return {
    async next(timeoutMs = 15_000): Promise<Message> {
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        iterator.next(),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error("no subscription message in time")), timeoutMs); }),
      ]).finally(() => clearTimeout(timer));
      if (result.done) throw new Error("subscription ended");
      if (result.value.errors) throw new Error(result.value.errors.map((e: any) => e.message).join("; "));
      return Object.values(result.value.data)[0] as Message;
    },
    /** Reads messages until one satisfies `until`; returns them all. */
    async until(until: (m: Message) => boolean): Promise<Message[]> {
      const seen: Message[] = [];
      for (;;) {
        const m = await this.next();
        seen.push(m);
        if (until(m)) return seen;
      }
    },
    stop: () => iterator.return?.(),
  };
}

async function firstError(client: Client, query: string, variables: Record<string, unknown>): Promise<string> {
  try {
    await subscribe(client, query, variables).next();
  } catch (e) {
    return (e as Error).message ?? String(e);
  }
  throw new Error("expected the subscription to fail");
}

const slow = (ms: number) => Object.fromEntries(
  ["BOM_CONSUMPTION", "BOM_PROCESSING", "VULN_ANALYSIS", "REPO_META_ANALYSIS", "POLICY_EVALUATION", "METRICS_UPDATE"].map((s) => [s, { sleepMs: ms }]));

describe("GraphQL change subscriptions", () => {
  const db = useTestDatabase();
  const gql = useGraphqlServer(db);

  async function startRun(workflow: string, input: unknown, subject?: string): Promise<string> {
    const r = await gql.query(`mutation($i: StartRunInput!) { startRun(input: $i) { result { token } } }`,
      { i: { workflow, input, subject } });
    expect(r.errors).toBeUndefined();
    return r.data.startRun.result.token;
  }

  /** Events of the run committed after the cursor, straight from the log. */
  async function loggedAfter(token: string, cursor: string): Promise<string[]> {
    const { rows } = await db.pool.query(
      "select e.seq::text as s from throughline.event e where e.token = $1 and not pg_visible_in_snapshot(e.xid, $2::pg_snapshot) order by e.seq",
      [token, cursor]);
    return rows.map((r) => r.s);
  }

  test("runChanges: state first, then every transition; a client that reconnects with its cursor misses nothing and sees nothing twice", async () => {
    const worker = await startTestWorker(db.pool);
    let clients: Client[] = [];
    try {
      // The first step is slower, so the subscription is surely live before anything completes.
      const token = await startRun("test_dag", { steps: { ...slow(150), BOM_CONSUMPTION: { sleepMs: 500 } } });
      const first = gql.wsClient();
      clients.push(first);
      const sub1 = subscribe(first, runChanges, { token });
      const state = await sub1.next();
      expect(state.events).toEqual([]);
      expect(state.runs).toHaveLength(1);
      expect(state.runs![0]).toMatchObject({ token, workflow: "test_dag", isProcessing: true });
      expect(state.runs![0].steps.map((s: any) => s.step)).toEqual(Object.keys(slow(0)));
      const initialCursor = state.cursor;

      // Live until a step has completed, then the client goes away mid-run.
      const live = await sub1.until((m) => m.events.some((e) => e.kind === "STEP_STATUS" && e.toStatus === "COMPLETED"));
      await sub1.stop();
      await first.dispose();
      clients = [];
      await waitFor(async () => gql.server.changes.subscriberCount() === 0, { what: "the vanished subscriber to be dropped" });

      // Transitions happen while nobody listens.
      await waitFor(async () => (await stepsOf(db.pool, token)).BOM_PROCESSING.status === "COMPLETED", { what: "BOM_PROCESSING to complete" });
      const resumeFrom = live.at(-1)!.cursor;

      const second = gql.wsClient();
      clients.push(second);
      const sub2 = subscribe(second, runChanges, { token, after: resumeFrom });
      const resumed = await sub2.until((m) => m.events.some((e) => e.kind === "RUN_ENDED"));
      expect(resumed[0].runs).toBeNull();
      expect(resumed[0].events.some((e) => e.step === "BOM_PROCESSING" && e.toStatus === "COMPLETED")).toBe(true);
      expect(await runEnded(db.pool, token)).toBe("COMPLETED");

      const received = [...live, ...resumed].flatMap((m) => m.events.map((e) => e.seq));
      expect(new Set(received).size, "no duplicates").toBe(received.length);
      expect([...received].sort((a, b) => Number(a) - Number(b))).toEqual(await loggedAfter(token, initialCursor));
      expect([...live, ...resumed].every((m) => m.events.every((e) => e.token === token))).toBe(true);

      // A reconnect after the end gets nothing more, and says where it is.
      const third = gql.wsClient();
      clients.push(third);
      const sub3 = subscribe(third, runChanges, { token, after: resumed.at(-1)!.cursor });
      const nothing = await sub3.next();
      expect(nothing.events).toEqual([]);
      expect(nothing.cursor).toMatch(/^\d+:\d+:/);
      await sub3.stop();
    } finally {
      for (const c of clients) await c.dispose();
      await worker.stop();
    }
  });

  test("runsChanges filters by workflow and subject and resumes from a cursor", async () => {
    const worker = await startTestWorker(db.pool);
    const client = gql.wsClient();
    try {
      const earlier = await startRun("test_single", {}, "filter-me");
      await runEnded(db.pool, earlier);
      const sub = subscribe(client, runsChanges, { workflow: "test_single", subject: "filter-me" });
      const state = await sub.next();
      expect(state.runs!.map((r) => r.token)).toEqual([earlier]);
      expect(state.runs![0].status).toBe("COMPLETED");

      const otherWorkflow = await startRun("test_dag", {}, "filter-me");
      const otherSubject = await startRun("test_single", {}, "someone-else");
      const wanted = await startRun("test_single", { steps: { ONLY: { sleepMs: 50 } } }, "filter-me");
      const messages = await sub.until((m) => m.events.some((e) => e.token === wanted && e.kind === "RUN_ENDED"));
      const events = messages.flatMap((m) => m.events);
      expect(events.every((e) => e.token === wanted && e.workflow === "test_single" && e.subject === "filter-me")).toBe(true);
      expect(events.map((e) => e.seq).sort((a, b) => Number(a) - Number(b))).toEqual(await loggedAfter(wanted, state.cursor));
      await Promise.all([runEnded(db.pool, otherWorkflow), runEnded(db.pool, otherSubject)]);
      await sub.stop();

      // From the state's cursor again: the same transitions, and only those.
      const again = subscribe(client, runsChanges, { workflow: "test_single", subject: "filter-me", after: state.cursor });
      const replay = await again.next();
      expect(replay.runs).toBeNull();
      expect(replay.events.map((e) => e.seq)).toEqual(events.map((e) => e.seq));
      await again.stop();
    } finally {
      await client.dispose();
      await worker.stop();
    }
  });

  test("an unknown token and a malformed cursor are refused with clear messages", async () => {
    const client = gql.wsClient();
    try {
      const token = "33333333-3333-4333-8333-333333333333";
      expect(await firstError(client, runChanges, { token })).toBe(`Provided token ${token} does not exist.`);
      expect(await firstError(client, runsChanges, { after: "yesterday" }))
        .toBe('"yesterday" is not a cursor: pass the cursor of a message this API sent.');
      await waitFor(async () => gql.server.changes.subscriberCount() === 0, { what: "refused subscriptions to leave nothing behind" });
    } finally {
      await client.dispose();
    }
  });
});
