// D: 500 WebSocket subscribers in a separate load process (bench/subscribers.ts), and the bench's own
// commit observer that gives each event its "committed" time.
//
// The commit observer: one connection in the bench process that LISTENs on "throughline:events" AND
// polls every `pollMs`, reading throughline.events_after(cursor) (the public cursor read) on each
// wake-up, and records when it first saw each event (by seq). An event is visible to any reader from
// its transaction's commit on, so first-seen = commit + (notification or poll delay) + one read. With
// the NOTIFY per transaction that is ≈ 1 ms; if a future engine notifies less, the poll bounds it
// at pollMs. `at` is the transaction START (now()), so receipt − at also counts the writing
// transaction's own duration and queueing; it is reported as an upper bound only.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { sleep } from "./stats.ts";

const now = () => performance.timeOrigin + performance.now();

export interface CommitObserver {
  firstSeen: Map<number, number>;
  stop(): Promise<void>;
}

export async function observeCommits(url: string, pollMs = 10): Promise<CommitObserver> {
  const listener = new pg.Client({ connectionString: url });
  const reader = new pg.Client({ connectionString: url });
  await Promise.all([listener.connect(), reader.connect()]);
  let cursor: string = (await reader.query("select throughline.current_cursor() as c")).rows[0].c;
  const firstSeen = new Map<number, number>();
  let stopped = false;
  let wake: (() => void) | undefined;
  listener.on("notification", () => wake?.());
  await listener.query('listen "throughline:events"');
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await reader.query({ name: "obs", text: "select next_cursor, events from throughline.events_after($1::text)", values: [cursor] });
      const t = now();
      cursor = rows[0].next_cursor;
      for (const e of rows[0].events as { seq: number }[]) if (!firstSeen.has(Number(e.seq))) firstSeen.set(Number(e.seq), t);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => { clearTimeout(timer); resolve(); };
      });
      wake = undefined;
    }
  })();
  return {
    firstSeen,
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await Promise.all([listener.end(), reader.end()]);
    },
  };
}

export interface SubscriberSamples {
  sampleEvery: number;
  seqs: number[];
  received: number[];
  ats: number[];
  events: number;
  messages: number;
  errors: number;
  errorSamples: string[];
  clients: number;
  /** per-run: runs followed, and those whose end reached their client. */
  followed: number;
  endsSeen: number;
  /** per-run: up to 20 runs whose end did not reach their client, with what it saw. */
  unended?: { token: string; state?: string; kinds: string[]; completed?: boolean; error?: string }[];
}

export interface SubscriberLoad {
  pid: number;
  /** per-run: hands these tokens to idle clients, each to follow one run. */
  follow(tokens: string[]): void;
  /** Stops the subscriptions, collects the samples and waits for the process to exit. */
  stop(): Promise<SubscriberSamples>;
  kill(): void;
}

export async function startSubscribers(opts: { wsUrl: string; apiKey: string; count: number; workflow: string; mode: "all" | "per-run"; timeoutMs?: number }): Promise<SubscriberLoad> {
  const script = path.join(import.meta.dirname, "..", "subscribers.ts");
  let stderr = "";
  const child: ChildProcess = spawn(process.execPath, [script, opts.wsUrl, opts.apiKey, String(opts.count), opts.workflow, opts.mode], {
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const message = (key: string, timeoutMs: number) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`subscriber process: no "${key}" within ${timeoutMs / 1000} s\n${stderr}`)), timeoutMs);
    const onMessage = (m: Record<string, unknown>) => {
      if (m.failed) { clearTimeout(timer); reject(new Error(`subscriber process failed: ${m.failed}\n${stderr}`)); }
      if (key in m) { clearTimeout(timer); child.off("message", onMessage); resolve(m); }
    };
    child.on("message", onMessage);
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`subscriber process exited (${code})\n${stderr}`)); });
  });
  try {
    await message("ready", opts.timeoutMs ?? 120_000);
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    pid: child.pid!,
    follow(tokens) {
      if (tokens.length) child.send({ cmd: "follow", tokens });
    },
    async stop() {
      const out = path.join(os.tmpdir(), `tl-bench-subscribers-${child.pid}.json`);
      const done = message("done", 60_000);
      child.send({ cmd: "stop", out });
      await done;
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
      const samples = JSON.parse(readFileSync(out, "utf8")) as SubscriberSamples;
      rmSync(out, { force: true });
      return samples;
    },
    kill() {
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

/** Delivery latencies (ms) of the sampled events: receipt − first seen by the observer, and receipt − `at`. */
export function deliveryLatencies(samples: SubscriberSamples, firstSeen: Map<number, number>): { commit: number[]; at: number[]; unmatched: number } {
  const commit: number[] = [];
  const at: number[] = [];
  let unmatched = 0;
  for (let i = 0; i < samples.seqs.length; i++) {
    const seen = firstSeen.get(samples.seqs[i]);
    at.push(samples.received[i] - samples.ats[i]);
    if (seen === undefined) unmatched++;
    else commit.push(samples.received[i] - seen);
  }
  return { commit, at, unmatched };
}
