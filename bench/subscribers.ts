// D's load process (spawned by bench/run.ts with an IPC channel, not run by hand): opens N graphql-ws
// clients, each on its own WebSocket with the API key in connectionParams, each subscribed to
// `runsChanges(workflow)` — every transition of every run of the workflow, the worst case of fan-out
// (a dashboard per client). Reports "ready" when every subscription has delivered its first message;
// on "stop", writes the samples to a file and exits.
//
// Samples: client i keeps the receipt time of the events whose seq ≡ i (mod sampleEvery), so every
// event is sampled by N / sampleEvery clients and memory stays bounded. Times are wall-clock ms
// (performance.timeOrigin + performance.now()), comparable with the bench process on the same machine.
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

const [wsUrl, apiKey, countArg, workflow, sampleEveryArg] = process.argv.slice(2);
const count = Number(countArg);
const sampleEvery = Number(sampleEveryArg ?? 25);
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
        if (errorSamples.length < 5) errorSamples.push(String((err as Error)?.message ?? JSON.stringify(err)));
        if (first) reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
      },
      complete() {},
    });
    stops.push(stop);
  });
}

async function main() {
  // Connect in waves so the server is not asked for 500 handshakes in the same millisecond.
  const wave = 50;
  for (let i = 0; i < count; i += wave) {
    await Promise.all(Array.from({ length: Math.min(wave, count - i) }, (_, k) => subscribeOne(i + k)));
  }
  send({ ready: clients.length });
  process.on("message", async (m: { cmd: string; out: string }) => {
    if (m.cmd !== "stop") return;
    for (const s of stops) s();
    await Promise.all(clients.map((c) => c.dispose()));
    writeFileSync(m.out, JSON.stringify({ sampleEvery, seqs, received, ats, events, messages, errors, errorSamples, clients: count }));
    send({ done: true });
    process.disconnect();
  });
}

main().catch((e) => {
  send({ failed: String(e?.stack ?? e) });
  process.exit(1);
});
