// `throughline submit | status | wait` for CI pipelines: talk to a running Throughline server over
// its Dependency-Track-compatible REST API (server/rest/dependencyTrack.ts), so a pipeline needs a URL
// (and later an API key), never database credentials.
//
//   throughline submit --project <uuid | name@version> --bom FILE [--wait [wait options]] [--json]
//   throughline submit --analyze --project <uuid>                 (a re-analysis)
//   throughline status <token> [--json]
//   throughline wait <token> [--timeout SECONDS] [--interval SECONDS] [--stall SECONDS] [--json]
//
// Environment: THROUGHLINE_URL (default http://127.0.0.1:5678); THROUGHLINE_API_KEY, sent as
// X-Api-Key (Dependency-Track's header) when set.
//
// Exit codes (wait, and submit --wait):
//   0  every step ended COMPLETED or NOT_APPLICABLE
//   1  a step FAILED (its reason is printed)
//   2  usage or configuration error (bad arguments, server unreachable or refusing)
//   3  the run was CANCELLED (no step failed)
//   4  unknown token
//   5  timed out: a step is TIMED_OUT and no step has changed for --stall seconds (default 60).
//      The orchestrator has stopped expecting that step; a late result could still complete it,
//      but a pipeline should not sit through the hour before maintenance fails it.
//   6  --timeout seconds passed while the run was still processing (nothing is cancelled)
// status: 0 when the token exists (whatever its state), 4 when unknown, 2 on usage errors.
// submit without --wait: 0 once the server accepted the run (its token is printed), 2 otherwise.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";

export const exitCodes = {
  ok: 0,
  failed: 1,
  usage: 2,
  cancelled: 3,
  unknownToken: 4,
  timedOut: 5,
  waitTimeout: 6,
} as const;

export type Outcome = "COMPLETED" | "FAILED" | "CANCELLED" | "UNKNOWN_TOKEN" | "TIMED_OUT" | "WAIT_TIMEOUT";

const outcomeCodes: Record<Outcome, number> = {
  COMPLETED: exitCodes.ok,
  FAILED: exitCodes.failed,
  CANCELLED: exitCodes.cancelled,
  UNKNOWN_TOKEN: exitCodes.unknownToken,
  TIMED_OUT: exitCodes.timedOut,
  WAIT_TIMEOUT: exitCodes.waitTimeout,
};

/** One element of GET /api/v1/workflow/token/{token}/status. */
export interface StepState {
  token: string;
  step: string;
  status: string;
  startedAt?: number;
  updatedAt: number;
  failureReason?: string;
}

export interface CiIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  fetch: typeof fetch;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export const defaultIo = (): CiIo => ({
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  fetch: globalThis.fetch,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => Date.now(),
});

export class CiUsageError extends Error {}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const OPEN = new Set(["PENDING", "TIMED_OUT"]);

export const ciUsage = `For CI (over HTTP to THROUGHLINE_URL, default http://127.0.0.1:5678, with THROUGHLINE_API_KEY):
  throughline submit --project <uuid | name@version> --bom FILE [--wait] [--json]
  throughline submit --analyze --project <uuid> [--wait] [--json]
  throughline submit --workflow NAME --input FILE.json [--wait] [--json]
  throughline status <token> [--json]
  throughline wait <token> [--timeout SECONDS] [--interval SECONDS] [--stall SECONDS] [--json]

Exit codes of wait (and submit --wait): 0 all steps COMPLETED or NOT_APPLICABLE, 1 a step FAILED,
2 usage or configuration error, 3 cancelled, 4 unknown token, 5 a step TIMED_OUT and the run stalled
for --stall seconds (default 60), 6 --timeout reached while still processing.`;

// ---------------------------------------------------------------------------------------------
// HTTP

interface Client {
  base: string;
  get(path: string): Promise<Response>;
  send(method: string, path: string, body?: BodyInit, headers?: Record<string, string>): Promise<Response>;
}

function clientFor(io: CiIo): Client {
  const raw = io.env.THROUGHLINE_URL || "http://127.0.0.1:5678";
  let base: string;
  try {
    const url = new URL(raw);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
    base = url.toString().replace(/\/+$/, "");
  } catch {
    throw new CiUsageError(`THROUGHLINE_URL is not an http(s) URL: "${raw}"`);
  }
  const auth: Record<string, string> = io.env.THROUGHLINE_API_KEY ? { "x-api-key": io.env.THROUGHLINE_API_KEY } : {};
  // Every request has a time limit, so that --timeout holds even when the server stops answering.
  const send = async (method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}, timeoutMs = 120_000) => {
    try {
      return await io.fetch(base + path, { method, body, headers: { ...auth, ...headers }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      const err = e as Error & { cause?: Error };
      const why = err.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : err.cause?.message ?? err.message;
      throw new CiUsageError(`cannot reach Throughline at ${base}: ${why}`);
    }
  };
  return { base, get: (path) => send("GET", path, undefined, {}, 10_000), send };
}

/** The body of a 200 answer as JSON; a page that is not JSON (a login proxy, say) is a clear error. */
async function jsonOf(res: Response, what: string): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new CiUsageError(`${what}: the server answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`);
  }
}

async function refusal(res: Response, what: string): Promise<CiUsageError> {
  const body = (await res.text().catch(() => "")).slice(0, 500);
  return new CiUsageError(`${what}: the server answered ${res.status}${body ? `: ${body}` : ""}`);
}

/** The steps of a run, or undefined for an unknown token. Transient failures are retried (3 times). */
export async function fetchStatus(client: Client, token: string, io: CiIo): Promise<StepState[] | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await client.get(`/api/v1/workflow/token/${encodeURIComponent(token)}/status`);
      if (res.status === 404) return undefined;
      if (res.status === 200) return (await jsonOf(res, `reading the status of ${token}`)) as StepState[];
      if (res.status < 500 || attempt >= 3) throw await refusal(res, `reading the status of ${token}`);
    } catch (e) {
      if (attempt >= 3) throw e;
    }
    await io.sleep(500 * attempt);
  }
}

// ---------------------------------------------------------------------------------------------
// Outcomes

/** The outcome of a run whose steps have all ended, or undefined while any is open. */
export function outcomeOf(steps: StepState[]): Outcome | undefined {
  if (steps.some((s) => OPEN.has(s.status))) return undefined;
  if (steps.some((s) => s.status === "FAILED")) return "FAILED";
  if (steps.some((s) => s.status === "CANCELLED")) return "CANCELLED";
  return "COMPLETED";
}

const fmtDuration = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`);

function summaryLine(steps: StepState[]): string {
  const done = steps.filter((s) => !OPEN.has(s.status)).length;
  const open = steps.filter((s) => OPEN.has(s.status)).map((s) => (s.status === "TIMED_OUT" ? `${s.step} (TIMED_OUT)` : s.step));
  return `${done}/${steps.length} steps done${open.length ? `; waiting for ${open.join(", ")}` : ""}`;
}

function stepTable(steps: StepState[]): string {
  return steps.map((s) => `  ${s.step.padEnd(20)} ${s.status.padEnd(15)}${s.failureReason ?? ""}`.trimEnd() + "\n").join("");
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface WaitOptions {
  /** Give up (exit 6) after this many seconds; none by default. */
  timeoutSeconds?: number;
  /** Seconds between polls when polling (default 1); the live line is redrawn at least this often. */
  intervalSeconds?: number;
  /** With a step TIMED_OUT, give up (exit 5) after this many seconds without any step changing (default 60). */
  stallSeconds?: number;
  json?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Following a run over the GraphQL subscription runChanges (server/plugins/RunChangesSubscriptionPlugin.ts)

const runChangesQuery = `subscription($token: UUID!, $after: String) {
  runChanges(token: $token, after: $after) {
    cursor
    runs { steps { id step status startedAt updatedAt failureReason } }
    events { stepId kind toStatus reason at }
  }
}`;

interface RunChangesMessage {
  cursor: string;
  runs: { steps: { id: string; step: string; status: string; startedAt: string | null; updatedAt: string; failureReason: string | null }[] }[] | null;
  events: { stepId: string | null; kind: string; toStatus: string | null; reason: string | null; at: string }[];
}

/** What the socket said: a message, "this token does not exist", or that it cannot be used any more. */
type SocketEvent = { kind: "message"; message: RunChangesMessage } | { kind: "unknownToken" } | { kind: "broken"; reason: string };

interface RunSocket {
  /** The next event, or undefined when nothing came within timeoutMs. */
  next(timeoutMs: number): Promise<SocketEvent | undefined>;
  close(): Promise<void>;
}

const describeFailure = (e: unknown): string => {
  if (e instanceof Error) return e.message;
  if (e && typeof e === "object" && "code" in e) {
    const { code, reason } = e as { code: number; reason?: string };
    return `socket closed (${code}${reason ? `: ${reason}` : ""})`;
  }
  return String(e);
};

/**
 * Subscribes to runChanges(token, after) over graphql-ws at THROUGHLINE_URL's /graphql, with the API
 * key in the connection params. A string instead of a socket: why the subscription cannot be used.
 */
async function openRunSocket(client: Client, apiKey: string | undefined, token: string, after: string | undefined): Promise<RunSocket | string> {
  // graphql-ws is loaded only here: without it, wait still works by polling.
  let graphqlWs: typeof import("graphql-ws");
  let WebSocketImpl: typeof import("ws").default;
  try {
    graphqlWs = await import("graphql-ws");
    WebSocketImpl = (await import("ws")).default;
  } catch (e) {
    return `no WebSocket client: ${(e as Error).message}`;
  }
  class HandshakeBoundWebSocket extends WebSocketImpl {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { handshakeTimeout: 10_000 });
      // graphql-ws drops its own listener when it terminates a socket; an error after that (a
      // handshake aborted while connecting) must not crash the CLI.
      this.on("error", () => {});
    }
  }
  const queue: SocketEvent[] = [];
  let waiter: ((e: SocketEvent | undefined) => void) | undefined;
  const push = (e: SocketEvent) => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(e);
    } else queue.push(e);
  };
  const errorsEvent = (errors: readonly { message: string; extensions?: Record<string, unknown> }[]): SocketEvent =>
    errors.some((e) => e.extensions?.code === "TL404" || e.message === `Provided token ${token} does not exist.`)
      ? { kind: "unknownToken" }
      : { kind: "broken", reason: errors.map((e) => e.message).join("; ") };

  // A connection that stops answering pings is closed (then resumed or polled), not waited on forever.
  let socket: import("ws").default | undefined;
  let pongTimer: NodeJS.Timeout | undefined;
  const ws = graphqlWs.createClient({
    url: client.base.replace(/^http/, "ws") + "/graphql",
    webSocketImpl: HandshakeBoundWebSocket,
    connectionParams: apiKey ? { "X-Api-Key": apiKey } : {},
    retryAttempts: 0,
    connectionAckWaitTimeout: 10_000,
    keepAlive: 15_000,
    on: {
      connected: (s) => (socket = s as import("ws").default),
      ping: (received) => {
        if (!received) pongTimer = setTimeout(() => socket?.close(4408, "no pong"), 10_000);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
      closed: () => clearTimeout(pongTimer),
    },
  });
  const unsubscribe = ws.subscribe<{ runChanges: RunChangesMessage }>({ query: runChangesQuery, variables: { token, after: after ?? null } }, {
    next: (result) => {
      if (result.errors?.length) push(errorsEvent(result.errors));
      else if (result.data?.runChanges) push({ kind: "message", message: result.data.runChanges });
    },
    error: (e) => push(Array.isArray(e) ? errorsEvent(e) : { kind: "broken", reason: describeFailure(e) }),
    complete: () => push({ kind: "broken", reason: "the server ended the subscription" }),
  });
  return {
    next(timeoutMs) {
      if (queue.length) return Promise.resolve(queue.shift());
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiter = undefined;
          resolve(undefined);
        }, timeoutMs);
        waiter = (e) => {
          clearTimeout(timer);
          resolve(e);
        };
      });
    },
    async close() {
      clearTimeout(pongTimer);
      unsubscribe();
      // dispose() waits for a connection still being opened and rethrows its failure: the answer is
      // already known here, so give it a second, then drop the socket.
      const disposed = Promise.resolve(ws.dispose()).catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([disposed, new Promise((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
      ws.terminate();
    },
  };
}

/** The steps of a run as its subscription messages describe them (for progress; see ciWait). */
class FollowedSteps {
  private readonly byId = new Map<string, { step: string; status: string; startedAt?: number; updatedAt: number; failureReason?: string }>();
  private readonly token: string;
  constructor(token: string) {
    this.token = token;
  }

  apply(message: RunChangesMessage): void {
    if (message.runs) {
      this.byId.clear();
      for (const s of message.runs[0]?.steps ?? []) {
        this.byId.set(s.id, {
          step: s.step, status: s.status, startedAt: s.startedAt ? Date.parse(s.startedAt) : undefined,
          updatedAt: Date.parse(s.updatedAt), failureReason: s.failureReason ?? undefined,
        });
      }
    }
    for (const e of message.events) {
      const s = e.stepId ? this.byId.get(e.stepId) : undefined;
      if (!s) continue;
      const at = Date.parse(e.at);
      // As the status route: updatedAt moves with status changes only (not with a new attempt), so
      // --stall judges alike over the socket and by polling.
      if (e.kind === "STEP_STATUS") s.updatedAt = at;
      if (e.kind === "STEP_STATUS" && e.toStatus) {
        s.status = e.toStatus;
        // An event's reason is the failure reason for FAILED, else a status note that REST does not show.
        s.failureReason = e.toStatus === "FAILED" ? (e.reason ?? undefined) : undefined;
      } else if (e.kind === "STEP_STARTED") {
        s.startedAt = at;
      }
    }
  }

  /** In the shape (and key order) of the REST status route. */
  states(): StepState[] {
    return [...this.byId.values()].map((s) => ({
      token: this.token, step: s.step, status: s.status,
      ...(s.startedAt !== undefined ? { startedAt: s.startedAt } : {}),
      updatedAt: s.updatedAt,
      ...(s.failureReason !== undefined ? { failureReason: s.failureReason } : {}),
    }));
  }
}

/** Resumptions with the last cursor after the socket dropped, before polling instead. */
const maxResumes = 5;
/** How long wait keeps trying a server it can no longer reach, once it has seen the run (no --timeout). */
const unreachableGraceMs = 120_000;

/**
 * Waits for a run to end. It follows the run over the GraphQL subscription runChanges; when the
 * WebSocket cannot be opened it polls the REST status route instead, and when the socket drops it
 * subscribes again from the last cursor it received (nothing is missed), polling if that fails too.
 * The final answer (step table, --json) is read once from the REST status route, so it is exactly
 * what polling would print.
 */
export async function ciWait(token: string, options: WaitOptions = {}, io: CiIo = defaultIo()): Promise<number> {
  if (!UUID_RE.test(token)) throw new CiUsageError(`not a token (a UUID): "${token}"`);
  const client = clientFor(io);
  const interval = Math.max(0.01, options.intervalSeconds ?? 1) * 1000;
  const stall = (options.stallSeconds ?? 60) * 1000;
  const started = io.now();
  const deadline = options.timeoutSeconds !== undefined ? started + options.timeoutSeconds * 1000 : Infinity;
  const live = !options.json && !!io.stdout.isTTY;
  const seen = new Map<string, string>();
  let lastChange = started;
  let lastLive = "";

  const finish = (outcome: Outcome, steps: StepState[] | undefined): number => {
    const code = outcomeCodes[outcome];
    if (live && lastLive) io.stdout.write("\r\x1b[K");
    if (options.json) {
      io.stdout.write(JSON.stringify({ token, outcome, exitCode: code, steps: steps ?? [] }) + "\n");
      return code;
    }
    if (outcome === "UNKNOWN_TOKEN") {
      io.stderr.write(`Provided token ${token} does not exist.\n`);
      return code;
    }
    const took = fmtDuration(io.now() - started);
    const headline: Record<Outcome, string> = {
      COMPLETED: `run ${token} completed (${took})`,
      FAILED: `run ${token} FAILED (${took})`,
      CANCELLED: `run ${token} was CANCELLED (${took})`,
      TIMED_OUT: `run ${token} is stalled: a step TIMED_OUT and nothing changed for ${fmtDuration(stall)}`,
      WAIT_TIMEOUT: `gave up waiting for run ${token} after ${fmtDuration(io.now() - started)}; it is still processing`,
      UNKNOWN_TOKEN: "",
    };
    io.stdout.write(`${headline[outcome]}\n${stepTable(steps ?? [])}`);
    const failed = (steps ?? []).filter((s) => s.status === "FAILED" || s.status === "TIMED_OUT");
    for (const s of failed) io.stderr.write(`${s.step} ${s.status}${s.failureReason ? `: ${s.failureReason}` : ""}\n`);
    return code;
  };

  /** Records and prints what changed since the last look. */
  const noteChanges = (steps: StepState[]) => {
    for (const s of steps) {
      const before = seen.get(s.step);
      if (before !== `${s.status}:${s.updatedAt}`) {
        if (seen.size >= steps.length || before !== undefined) lastChange = io.now();
        seen.set(s.step, `${s.status}:${s.updatedAt}`);
        if (!options.json && !live && before?.split(":")[0] !== s.status) {
          io.stdout.write(`${s.step} ${s.status}${s.failureReason ? `: ${s.failureReason}` : ""}\n`);
        }
      }
    }
  };

  /** One look at the steps (from a poll or a subscription message): the outcome once there is one. */
  const observe = (steps: StepState[]): Outcome | undefined => {
    noteChanges(steps);
    const outcome = outcomeOf(steps);
    if (outcome) return outcome;
    if (live) {
      const line = `${summaryLine(steps)} (${fmtDuration(io.now() - started)})`;
      io.stdout.write(`\r\x1b[K${line}`);
      lastLive = line;
    }
    if (steps.some((s) => s.status === "TIMED_OUT") && io.now() - lastChange >= stall) return "TIMED_OUT";
    if (io.now() >= deadline) return "WAIT_TIMEOUT";
    return undefined;
  };

  /** The subscription saw the outcome: print the REST route's view of the steps, as polling would. */
  const finishFollowed = async (outcome: Outcome, followed: StepState[]): Promise<number> => {
    let timer: NodeJS.Timeout | undefined;
    const final = await Promise.race([
      client.get(`/api/v1/workflow/token/${encodeURIComponent(token)}/status`)
        .then(async (res) => (res.status === 200 ? ((await res.json()) as StepState[]) : undefined))
        .catch(() => undefined),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), 5_000);
      }),
    ]).finally(() => clearTimeout(timer));
    let steps = followed;
    if (final?.length) {
      const restOutcome = outcomeOf(final);
      if (restOutcome) {
        outcome = restOutcome;
        steps = final;
      } else if (outcome === "TIMED_OUT" || outcome === "WAIT_TIMEOUT") {
        steps = final;
      }
      if (steps === final) noteChanges(final);
    }
    return finish(outcome, steps);
  };

  // Over the subscription.
  const followed = new FollowedSteps(token);
  let cursor: string | undefined;
  for (let resumes = 0; ; resumes++) {
    const socket = await openRunSocket(client, io.env.THROUGHLINE_API_KEY, token, cursor);
    if (typeof socket === "string") break;
    let received = false;
    try {
      for (;;) {
        // Wake up at least every second (live line, --stall, --timeout) even when nothing changes.
        const tick = Math.max(10, Math.min(1000, interval, stall, deadline - io.now()));
        const event = await socket.next(tick);
        if (event === undefined) {
          if (!cursor) {
            if (io.now() >= deadline) break; // not even the first message: polling answers at once
            continue;
          }
          const steps = followed.states();
          const outcome = observe(steps);
          if (outcome) return await finishFollowed(outcome, steps);
          continue;
        }
        if (event.kind === "unknownToken") return finish("UNKNOWN_TOKEN", undefined);
        if (event.kind === "broken") break;
        received = true;
        followed.apply(event.message);
        cursor = event.message.cursor;
        const steps = followed.states();
        const outcome = observe(steps);
        if (outcome) return await finishFollowed(outcome, steps);
      }
    } finally {
      await socket.close();
    }
    if (io.now() >= deadline || !cursor || (resumes > 0 && !received) || resumes >= maxResumes) break;
    await io.sleep(200 * (resumes + 1));
  }

  // By polling the REST status route. Once the run has been seen, a server that cannot be reached
  // is taken for a restart or a deploy: wait keeps trying (up to --timeout, or unreachableGraceMs
  // without one) instead of failing the pipeline.
  let unreachableSince: number | undefined;
  let lastSteps: StepState[] | undefined = cursor ? followed.states() : undefined;
  for (;;) {
    let steps: StepState[] | undefined;
    try {
      steps = await fetchStatus(client, token, io);
    } catch (e) {
      if (!(e instanceof CiUsageError) || (lastSteps === undefined && seen.size === 0)) throw e;
      if (io.now() >= deadline) return finish("WAIT_TIMEOUT", lastSteps);
      unreachableSince ??= io.now();
      if (io.now() - unreachableSince > unreachableGraceMs) throw e;
      if (unreachableSince === io.now() && !options.json) io.stderr.write(`${e.message}; retrying\n`);
      await io.sleep(Math.min(2000, Math.max(0, deadline - io.now())));
      continue;
    }
    unreachableSince = undefined;
    if (!steps) return finish("UNKNOWN_TOKEN", undefined);
    lastSteps = steps;
    const outcome = observe(steps);
    if (outcome) return finish(outcome, steps);
    await io.sleep(Math.min(interval, Math.max(0, deadline - io.now())));
  }
}

export async function ciStatus(token: string, options: { json?: boolean } = {}, io: CiIo = defaultIo()): Promise<number> {
  if (!UUID_RE.test(token)) throw new CiUsageError(`not a token (a UUID): "${token}"`);
  const steps = await fetchStatus(clientFor(io), token, io);
  if (!steps) {
    if (options.json) io.stdout.write(JSON.stringify({ token, outcome: "UNKNOWN_TOKEN", steps: [] }) + "\n");
    else io.stderr.write(`Provided token ${token} does not exist.\n`);
    return exitCodes.unknownToken;
  }
  const outcome = outcomeOf(steps) ?? "PROCESSING";
  if (options.json) io.stdout.write(JSON.stringify({ token, outcome, processing: outcome === "PROCESSING", steps }) + "\n");
  else io.stdout.write(`${token}  ${outcome}\n${stepTable(steps)}`);
  return exitCodes.ok;
}

export interface SubmitOptions {
  /** A project UUID, or name@version (name alone when there is no version). */
  project?: string;
  /** Any other workflow, started through GraphQL's startRun with the JSON input in this file. */
  workflow?: string;
  input?: string;
  /** Path of the BOM file (not for analyze). */
  bom?: string;
  /** Start a re-analysis of the project instead of uploading a BOM. */
  analyze?: boolean;
  json?: boolean;
  /** Wait for the run with these options (submit --wait). */
  wait?: WaitOptions;
}

/** Splits "name@version" at its last "@" (an npm scope's leading "@" is part of the name). */
export function projectFields(project: string): Record<string, string> {
  if (UUID_RE.test(project)) return { project };
  const at = project.lastIndexOf("@");
  return at > 0 ? { projectName: project.slice(0, at), projectVersion: project.slice(at + 1) } : { projectName: project };
}

/** Starts a run of any workflow through GraphQL (startRun); returns its token. */
async function submitWorkflow(client: Client, workflow: string, inputFile: string): Promise<string> {
  let input: unknown;
  try {
    input = JSON.parse(await readFile(inputFile, "utf8"));
  } catch (e) {
    throw new CiUsageError(`cannot read the input file as JSON: ${(e as Error).message}`);
  }
  const res = await client.send("POST", "/graphql", JSON.stringify({
    query: "mutation($w: String!, $i: JSON!) { startRun(input: { workflow: $w, input: $i }) { result { token } } }",
    variables: { w: workflow, i: input },
  }), { "content-type": "application/json" });
  if (res.status !== 200) throw await refusal(res, "submitting");
  const body = (await jsonOf(res, "submitting")) as { data?: { startRun?: { result?: { token: string } } }; errors?: { message: string }[] };
  if (body.errors?.length) throw new CiUsageError(`submitting: ${body.errors.map((e) => e.message).join("; ")}`);
  const token = body.data?.startRun?.result?.token;
  if (!token) throw new CiUsageError(`submitting: the answer carried no token: ${JSON.stringify(body).slice(0, 200)}`);
  return token;
}

export async function ciSubmit(options: SubmitOptions, io: CiIo = defaultIo()): Promise<number> {
  const client = clientFor(io);
  let res: Response;
  if (options.workflow) {
    if (!options.input) throw new CiUsageError("submit --workflow needs --input FILE (the run input as JSON)");
    const token = await submitWorkflow(client, options.workflow, options.input);
    return finishSubmit(token, options, io);
  }
  if (!options.project) throw new CiUsageError("submit needs --project (with --bom or --analyze), or --workflow with --input");
  if (options.analyze) {
    if (!UUID_RE.test(options.project)) throw new CiUsageError(`--analyze needs a project UUID, got "${options.project}"`);
    res = await client.send("POST", `/api/v1/finding/project/${options.project}/analyze`);
  } else {
    if (!options.bom) throw new CiUsageError("submit needs --bom FILE (or --analyze)");
    let bytes: Buffer;
    try {
      bytes = await readFile(options.bom);
    } catch (e) {
      throw new CiUsageError(`cannot read the BOM file: ${(e as Error).message}`);
    }
    const form = new FormData();
    for (const [k, v] of Object.entries(projectFields(options.project))) form.append(k, v);
    form.append("autoCreate", "true");
    form.append("bom", new Blob([new Uint8Array(bytes)]), options.bom.split(/[\\/]/).pop());
    res = await client.send("POST", "/api/v1/bom", form);
  }
  if (res.status !== 200) throw await refusal(res, "submitting");
  const { token } = ((await jsonOf(res, "submitting")) ?? {}) as { token?: string };
  if (typeof token !== "string") throw new CiUsageError("submitting: the answer carried no token");
  return finishSubmit(token, options, io);
}

function finishSubmit(token: string, options: SubmitOptions, io: CiIo): Promise<number> | number {
  if (options.wait) {
    if (!options.json) io.stdout.write(`${token}\n`);
    return ciWait(token, { ...options.wait, json: options.json }, io);
  }
  io.stdout.write(options.json ? JSON.stringify({ token }) + "\n" : `${token}\n`);
  return exitCodes.ok;
}

// ---------------------------------------------------------------------------------------------
// One entry point for src/cli.ts: argv = [command, ...arguments]; returns the exit code.

const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new CiUsageError(`--${name} must be a number of seconds, got "${v}"`);
  return n;
};

export async function ciMain(argv: string[], io: CiIo = defaultIo()): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        project: { type: "string" },
        bom: { type: "string" },
        workflow: { type: "string" },
        input: { type: "string" },
        analyze: { type: "boolean", default: false },
        wait: { type: "boolean", default: false },
        timeout: { type: "string" },
        interval: { type: "string" },
        stall: { type: "string" },
        json: { type: "boolean", default: false },
      },
    });
    const [command, ...rest] = positionals;
    const waitOptions: WaitOptions = {
      timeoutSeconds: num("timeout", values.timeout),
      intervalSeconds: num("interval", values.interval),
      stallSeconds: num("stall", values.stall),
      json: values.json,
    };
    switch (command) {
      case "submit":
        return await ciSubmit({ project: values.project, bom: values.bom, analyze: values.analyze, workflow: values.workflow, input: values.input,
          json: values.json, wait: values.wait ? waitOptions : undefined }, io);
      case "status":
        if (rest.length !== 1) throw new CiUsageError("status needs one token");
        return await ciStatus(rest[0], { json: values.json }, io);
      case "wait":
        if (rest.length !== 1) throw new CiUsageError("wait needs one token");
        return await ciWait(rest[0], waitOptions, io);
      default:
        throw new CiUsageError(`unknown command "${command ?? ""}"`);
    }
  } catch (e) {
    if (e instanceof CiUsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.stderr.write(`throughline: ${(e as Error).message}\n\n${ciUsage}\n`);
      return exitCodes.usage;
    }
    throw e;
  }
}
