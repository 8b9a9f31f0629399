// Webhook delivery: the sending half of the transactional outbox in sql/current/810-webhooks.sql.
//
// Persist first, then notify (anchors §2, StackRox #21225): a delivery row and its job are written in
// the transaction that changed the run, so this task runs only after that change is committed. It is
// a job of its own, in its webhook's own queue: whatever the receiver does (errors, slowness, hanging,
// garbage) is recorded in throughline.webhook_delivery_attempt and logged, and never reaches a step.
// HTTP failures are retried by us (backoff and attempts live in our tables); this task throws only
// when our own bookkeeping fails, so that Graphile Worker rings the doorbell again.
import { createHmac } from "node:crypto";
import type pg from "pg";
import { z } from "zod";
import type { Task } from "graphile-worker";
import type { Logger } from "../log.ts";

export const webhookDeliveryTaskIdentifier = "throughline_webhook_delivery";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

export interface WebhookDeliveryOptions {
  pool: Queryable;
  log: Logger;
  /** Upper bound on any attempt's timeout, whatever the webhook says (default: none beyond the webhook's own). */
  maxTimeoutMs?: number;
  /** How much of the answer body is kept for diagnosis (default 1024 bytes). */
  responseExcerptBytes?: number;
  /** User-Agent header. */
  userAgent?: string;
  /** For tests: the fetch implementation. */
  fetch?: typeof fetch;
}

const jobPayload = z.object({ deliveryId: z.union([z.number().int(), z.string().regex(/^\d+$/)]) });

/** What throughline.begin_webhook_delivery hands the sender. */
const claimSchema = z.object({
  deliveryId: z.union([z.number(), z.string()]).transform(String),
  attempt: z.number().int(),
  maxAttempts: z.number().int(),
  event: z.string(),
  webhookId: z.union([z.number(), z.string()]).transform(String),
  url: z.string(),
  secret: z.string(),
  timeoutMs: z.number(),
  payload: z.record(z.string(), z.unknown()),
});
export type WebhookClaim = z.infer<typeof claimSchema>;

export interface AttemptResult {
  delivered: boolean;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  responseExcerpt: string | null;
}

/** The body's signature as sent in X-Throughline-Signature: `sha256=<hex HMAC-SHA256 of the body>`. */
export function signWebhookBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/** The JSON document POSTed for a delivery: the outbox payload plus the delivery id. */
export function webhookBody(claim: Pick<WebhookClaim, "deliveryId" | "payload">): string {
  return JSON.stringify({ deliveryId: claim.deliveryId, ...claim.payload });
}

async function readExcerpt(res: Response, maxBytes: number): Promise<string | null> {
  if (!res.body || maxBytes <= 0) {
    await res.body?.cancel().catch(() => {});
    return null;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = Buffer.concat(chunks).subarray(0, maxBytes);
  return bytes.length === 0 ? null : bytes.toString("utf8");
}

function describeError(error: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timed out after ${timeoutMs} ms`;
  const e = error as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  const message = e?.message ?? String(error);
  return cause && !message.includes(cause) ? `${message} (${cause})` : message;
}

/** One HTTP attempt. Never throws: every outcome, including timeouts and protocol errors, is a result. */
export async function attemptWebhookDelivery(claim: WebhookClaim, options: Pick<WebhookDeliveryOptions, "maxTimeoutMs" | "responseExcerptBytes" | "userAgent" | "fetch"> = {}): Promise<AttemptResult> {
  const timeoutMs = Math.max(1, Math.min(claim.timeoutMs, options.maxTimeoutMs ?? Number.POSITIVE_INFINITY));
  const body = webhookBody(claim);
  const controller = new AbortController();
  let timedOut = false;
  // The deadline covers the whole exchange: connecting, the headers and the body of the answer.
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const started = performance.now();
  let statusCode: number | null = null;
  try {
    const res = await (options.fetch ?? fetch)(claim.url, {
      method: "POST",
      body,
      redirect: "manual", // a redirect is not an acceptance; following it could send the event elsewhere
      signal: controller.signal,
      headers: {
        "content-type": "application/json",
        "user-agent": options.userAgent ?? "Throughline-Webhook/1",
        "x-throughline-delivery": claim.deliveryId,
        "x-throughline-event": claim.event,
        "x-throughline-attempt": String(claim.attempt),
        "x-throughline-signature": signWebhookBody(claim.secret, body),
      },
    });
    statusCode = res.status;
    const responseExcerpt = await readExcerpt(res, options.responseExcerptBytes ?? 1024);
    const delivered = res.status >= 200 && res.status < 300;
    return {
      delivered,
      statusCode,
      error: delivered ? null : `receiver answered HTTP ${res.status}${res.status >= 300 && res.status < 400 ? " (redirects are not followed)" : ""}`,
      durationMs: Math.round(performance.now() - started),
      responseExcerpt,
    };
  } catch (error) {
    return {
      delivered: false,
      statusCode,
      error: describeError(error, timedOut, timeoutMs),
      durationMs: Math.round(performance.now() - started),
      responseExcerpt: null,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Claims the delivery's next attempt; null when there is nothing to do (ended, not due, running elsewhere). */
export async function beginWebhookDelivery(db: Queryable, deliveryId: string): Promise<WebhookClaim | null> {
  const { rows } = await db.query({
    name: "throughline/begin_webhook_delivery",
    text: "select throughline.begin_webhook_delivery($1::bigint) as claim",
    values: [deliveryId],
  });
  return rows[0].claim ? claimSchema.parse(rows[0].claim) : null;
}

/** Records an attempt; returns the delivery's new state (PENDING, DELIVERED, FAILED) or STALE. */
export async function endWebhookDeliveryAttempt(db: Queryable, claim: Pick<WebhookClaim, "deliveryId" | "attempt">, result: AttemptResult): Promise<string> {
  const { rows } = await db.query({
    name: "throughline/end_webhook_delivery_attempt",
    text: "select throughline.end_webhook_delivery_attempt($1::bigint, $2::integer, $3::boolean, $4::integer, $5::text, $6::integer, $7::text) as state",
    values: [claim.deliveryId, claim.attempt, result.delivered, result.statusCode, result.error, result.durationMs,
      // Postgres text cannot hold NUL; a malformed answer must not make recording fail.
      result.responseExcerpt?.replaceAll("\u0000", "\uFFFD") ?? null],
  });
  return rows[0].state;
}

/** The Graphile Worker task `throughline_webhook_delivery` (payload {deliveryId}). */
export function webhookDeliveryTask(options: WebhookDeliveryOptions): Task {
  const log = options.log.child({ component: "webhooks" });
  return async (payload: unknown) => {
    const parsed = jobPayload.safeParse(payload);
    if (!parsed.success) {
      log.error({ payload }, "ignoring a webhook job whose payload is not {deliveryId}");
      return;
    }
    const deliveryId = String(parsed.data.deliveryId);
    const claim = await beginWebhookDelivery(options.pool, deliveryId);
    if (!claim) {
      log.debug({ deliveryId }, "delivery not due, already ended or being attempted elsewhere; nothing to do");
      return;
    }
    const result = await attemptWebhookDelivery(claim, options);
    const state = await endWebhookDeliveryAttempt(options.pool, claim, result);
    const fields = {
      deliveryId, webhookId: claim.webhookId, event: claim.event, attempt: claim.attempt, maxAttempts: claim.maxAttempts,
      statusCode: result.statusCode, durationMs: result.durationMs, state,
    };
    if (result.delivered) log.info(fields, "webhook delivered");
    else if (state === "FAILED") log.error({ ...fields, error: result.error }, "webhook delivery failed; giving up");
    else log.warn({ ...fields, error: result.error }, "webhook delivery attempt failed; will retry");
  };
}
