// A real HTTP receiver for webhook tests (node:http on 127.0.0.1, port 0), recording every request.
// Its answer is programmable per request: answer, fail, or hang until the test ends.
import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { waitFor } from "../helpers.ts";
import { createWebhook as createWebhookWith, type WebhookSpec } from "../../src/db/webhooks.ts";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The raw body, exactly as sent (what the signature covers). */
  body: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  receivedAt: number;
}

/** Decides the answer; may do async work first (e.g. look at the database). Not answering = hanging. */
export type Handler = (req: ReceivedRequest, res: http.ServerResponse) => void | Promise<void>;

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Requests whose answer is still open. */
  open(): number;
  handle(handler: Handler): void;
  /** Waits until at least n requests (matching filter) arrived. */
  waitForRequests(n: number, filter?: (r: ReceivedRequest) => boolean, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export const ok: Handler = (_req, res) => {
  res.writeHead(200, { "content-type": "text/plain" }).end("ok");
};

export async function startReceiver(handler: Handler = ok): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let current = handler;
  let open = 0;
  const server = http.createServer((req, res) => {
    open++;
    res.on("close", () => open--);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const r: ReceivedRequest = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body, json, receivedAt: Date.now() };
      requests.push(r);
      Promise.resolve(current(r, res)).catch((err) => {
        res.writeHead(599).end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/throughline`,
    requests,
    open: () => open,
    handle(h) {
      current = h;
    },
    waitForRequests(n, filter = () => true, timeoutMs = 30_000) {
      return waitFor(async () => {
        const matching = requests.filter(filter);
        return matching.length >= n ? matching : undefined;
      }, { timeoutMs, what: `${n} webhook request(s)` });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface WebhookRow {
  id: string;
  url: string;
  events: string[];
  secret: string;
  enabled: boolean;
}

/** Creates a webhook as the CLI does (src/db/webhooks.ts), with test-friendly timeouts and backoff. */
export async function createWebhook(db: pg.Pool | pg.PoolClient, spec: WebhookSpec): Promise<WebhookRow> {
  const { id } = await createWebhookWith(db, { timeoutSeconds: 5, maxAttempts: 3, backoffInitialSeconds: 0.05, backoffFactor: 2, backoffMaxSeconds: 1, ...spec });
  const { rows } = await db.query<WebhookRow>("select id::text, url, events, secret, enabled from throughline.webhook where id = $1", [id]);
  return rows[0];
}

export interface DeliveryRow {
  id: string;
  webhook_id: string;
  event: string;
  token: string;
  state: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  payload: Record<string, unknown>;
}

export async function deliveriesOf(db: pg.Pool | pg.PoolClient, webhookId: string): Promise<DeliveryRow[]> {
  const { rows } = await db.query<DeliveryRow>(
    `select id::text, webhook_id::text, event, token, state, attempts, last_status_code, last_error, payload
     from throughline.webhook_delivery where webhook_id = $1 order by id`, [webhookId]);
  return rows;
}

export interface AttemptRow {
  attempt: number;
  outcome: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number | null;
  started_at: Date;
  ended_at: Date | null;
  retry_at: Date | null;
}

export async function attemptsOf(db: pg.Pool | pg.PoolClient, deliveryId: string): Promise<AttemptRow[]> {
  const { rows } = await db.query<AttemptRow>(
    `select attempt, outcome, status_code, error, duration_ms, started_at, ended_at, retry_at
     from throughline.webhook_delivery_attempt where delivery_id = $1 order by attempt`, [deliveryId]);
  return rows;
}

/** Waits until every delivery of the webhook has ended (DELIVERED or FAILED) and there are at least n. */
export function deliveriesEnded(db: pg.Pool, webhookId: string, n = 1, timeoutMs = 30_000): Promise<DeliveryRow[]> {
  return waitFor(async () => {
    const rows = await deliveriesOf(db, webhookId);
    return rows.length >= n && rows.every((r) => r.state !== "PENDING") ? rows : undefined;
  }, { timeoutMs, what: `webhook ${webhookId} deliveries to end` });
}
