// D's load process (spawned by bench/run.ts with an IPC channel, not run by hand): opens N graphql-ws
// clients, each on its own WebSocket with the API key in connectionParams. Two modes:
// - "all": each client subscribes to `runsChanges(workflow)` — every transition of every run of the
//   workflow, the worst case of fan-out (a dashboard per client). "ready" once every subscription
//   has delivered its first message.
// - "per-run": each client follows ONE run with `runChanges(token)`, as `throughline wait` in a CI
//   pipeline does. "ready" once every socket is connected; the bench then sends {cmd: "follow",
//   tokens} as A commits its runs, and each token goes to the next idle client.
// On "stop", writes the samples to a file and exits.
//
// Samples: client i keeps the receipt time of the events whose seq ≡ i (mod sampleEvery), so every
// event is sampled by N / sampleEvery clients and memory stays bounded ("per-run": every event, each
// reaches one client). Times are wall-clock ms (performance.timeOrigin + performance.now()),
// comparable with the bench process on the same machine.
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

const [wsUrl, apiKey, countArg, workflow, mode = "all"] = process.argv.slice(2);
const count = Number(countArg);
const sampleEvery = mode === "per-run" ? 1 : 25;
const now = () => performance.timeOrigin + performance.now();
const send = (m: unknown) => process.send!(m);

const seqs: number[] = [];
const received: number[] = [];
const ats: number[] = [];
let events = 0;
let messages = 0;
let errors = 0;
const errorSamples: string[] = [];
const clients: Client[] = [];
const stops: (() => void)[] = [];
/** per-run: runs followed, and those whose end reached their client (a RUN_ENDED event or an ended state). */
let followed = 0;
let endsSeen = 0;
/** per-run: what each client saw of its run (to name the runs whose end did not arrive). */
const seen = new Map<string, { state?: string; kinds: string[]; ended: boolean; completed?: boolean; error?: string }>();

const query = "subscription($w: String) { runsChanges(workflow: $w, first: 1) { cursor events { seq at } } }";

async function subscribeOne(i: number): Promise<void> {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { "X-Api-Key": apiKey }, retryAttempts: 0, lazy: true });
  clients.push(client);
  await new Promise<void>((resolve, reject) => {
    let first = true;
    const stop = client.subscribe<{ runsChanges: { events: { seq: string; at: string }[] } }>({ query, variables: { w: workflow } }, {
      next(msg) {
        const t = now();
        if (first) {
          first = false;
          resolve();
          return;
        }
        messages++;
        for (const e of msg.data?.runsChanges.events ?? []) {
          events++;
          const seq = Number(e.seq);
          if (seq % sampleEvery === i % sampleEvery) {
            seqs.push(seq);
            received.push(t);
            ats.push(Date.parse(e.at));
          }
        }
        if (msg.errors) errors++;
      },
      error(err) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(describe(err));
        if (first) reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
      },
      complete() {},
    });
    stops.push(stop);
  });
}

/** An error or a WebSocket close event, as text (a CloseEvent has no message). */
const describe = (err: unknown): string => {
  const e = err as { message?: string; code?: number; reason?: string };
  if (e?.code !== undefined && e.reason !== undefined) return `socket closed ${e.code}: ${e.reason}`;
  return e?.message ?? JSON.stringify(err);
};

const runQuery = "subscription($t: UUID!) { runChanges(token: $t) { cursor runs { status } events { seq kind at } } }";

/** per-run: a connected client, waiting for its token. */
async function connectOne(): Promise<void> {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { "X-Api-Key": apiKey }, retryAttempts: 0, lazy: false });
  clients.push(client);
  await new Promise<void>((resolve, reject) => {
    const offConnected = client.on("connected", () => (offConnected(), offError(), resolve()));
    const offError = client.on("error", (err) => (offConnected(), offError(), reject(err instanceof Error ? err : new Error(String(err)))));
  });
}

/** per-run: client i follows one run until it ends. */
function follow(i: number, token: string): void {
  followed++;
  const mine: { state?: string; kinds: string[]; ended: boolean; completed?: boolean; error?: string } = { kinds: [], ended: false };
  seen.set(token, mine);
  const seeEnd = () => {
    if (!mine.ended) (mine.ended = true, endsSeen++);
  };
  const stop = clients[i].subscribe<{ runChanges: { runs: { status: string }[] | null; events: { seq: string; kind: string; at: string }[] } }>(
    { query: runQuery, variables: { t: token } }, {
      next(msg) {
        const t = now();
        if (msg.errors) {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(JSON.stringify(msg.errors));
          return;
        }
        const m = msg.data!.runChanges;
        if (m.runs) {
          mine.state = m.runs[0]?.status;
          if (m.runs.some((r) => r.status !== "PENDING")) seeEnd();
          return; // the state at subscription: nothing to time
        }
        messages++;
        for (const e of m.events) {
          events++;
          seqs.push(Number(e.seq));
          received.push(t);
          ats.push(Date.parse(e.at));
          mine.kinds.push(e.kind);
          if (e.kind === "RUN_ENDED") seeEnd();
        }
      },
      error(err) {
        errors++;
        mine.error = describe(err);
        if (errorSamples.length < 5) errorSamples.push(mine.error);
      },
      complete() {
        mine.completed = true; // the server ended the subscription
      },
    });
  stops.push(stop);
}

async function main() {
  // Connect in waves so the server is not asked for 500 handshakes in the same millisecond.
  const wave = 50;
  for (let i = 0; i < count; i += wave) {
    await Promise.all(Array.from({ length: Math.min(wave, count - i) }, (_, k) => (mode === "per-run" ? connectOne() : subscribeOne(i + k))));
  }
  send({ ready: clients.length });
  process.on("message", async (m: { cmd: string; out: string; tokens?: string[] }) => {
    if (m.cmd === "follow") {
      for (const token of m.tokens ?? []) if (followed < clients.length) follow(followed, token);
      return;
    }
    if (m.cmd !== "stop") return;
    for (const s of stops) s();
    await Promise.all(clients.map((c) => c.dispose()));
    writeFileSync(m.out, JSON.stringify({ sampleEvery, seqs, received, ats, events, messages, errors, errorSamples, clients: count, followed, endsSeen,
      unended: [...seen].filter(([, v]) => !v.ended).slice(0, 20).map(([token, v]) => ({ token, ...v })) }));
    send({ done: true });
    process.disconnect();
  });
}

main().catch((e) => {
  send({ failed: String(e?.stack ?? e) });
  process.exit(1);
});
