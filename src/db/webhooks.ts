// Webhooks for operators (sql/current/810-webhooks.sql): create, list, enable/disable, delete, and
// the recent deliveries of one webhook with their errors. The rules (valid URL, known events, limits)
// are the SQL functions'; this only calls them.
import type pg from "pg";
import { ThroughlineError, withDbErrors } from "./errors.ts";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

export interface WebhookSpec {
  url: string;
  events: string[];
  workflow?: string | null;
  subject?: string | null;
  secret?: string | null;
  description?: string | null;
  timeoutSeconds?: number | null;
  maxAttempts?: number | null;
  backoffInitialSeconds?: number | null;
  backoffFactor?: number | null;
  backoffMaxSeconds?: number | null;
}

export interface WebhookInfo {
  id: string;
  url: string;
  events: string[];
  workflow: string | null;
  subject: string | null;
  enabled: boolean;
  description: string;
  createdAt: string;
  /** Deliveries still to be sent (or being sent), and those that ended FAILED. */
  pending: number;
  failed: number;
}

export interface WebhookDeliveryInfo {
  id: string;
  event: string;
  token: string;
  state: string;
  attempts: number;
  maxAttempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: string;
  nextAttemptAt: string | null;
}

/** Creates a webhook; the answer carries its signing secret, which only this answer shows. */
export function createWebhook(db: Queryable, spec: WebhookSpec): Promise<{ id: string; secret: string }> {
  // Only the options given are passed: create_webhook's own defaults apply to the others.
  const args: [string, unknown][] = [["url", spec.url], ["events", spec.events]];
  if (spec.workflow != null) args.push(["workflow", spec.workflow]);
  if (spec.subject != null) args.push(["subject", spec.subject]);
  if (spec.secret != null) args.push(["secret", spec.secret]);
  if (spec.description != null) args.push(["description", spec.description]);
  if (spec.timeoutSeconds != null) args.push(["timeout", spec.timeoutSeconds]);
  if (spec.maxAttempts != null) args.push(["max_attempts", spec.maxAttempts]);
  if (spec.backoffInitialSeconds != null) args.push(["backoff_initial", spec.backoffInitialSeconds]);
  if (spec.backoffFactor != null) args.push(["backoff_factor", spec.backoffFactor]);
  if (spec.backoffMaxSeconds != null) args.push(["backoff_max", spec.backoffMaxSeconds]);
  const seconds = new Set(["timeout", "backoff_initial", "backoff_max"]);
  const cast: Record<string, string> = { events: "::text[]", max_attempts: "::integer", backoff_factor: "::numeric" };
  const list = args.map(([name], i) => seconds.has(name)
    ? `${name} => make_interval(secs => $${i + 1}::double precision)`
    : `${name} => $${i + 1}${cast[name] ?? "::text"}`);
  return withDbErrors(async () => {
    const { rows } = await db.query(`select id::text, secret from throughline.create_webhook(${list.join(", ")})`, args.map(([, v]) => v));
    return rows[0];
  });
}

export async function listWebhooks(db: Queryable): Promise<WebhookInfo[]> {
  const { rows } = await db.query(
    `select w.id::text, w.url, w.events, w.workflow, w.subject, w.enabled, w.description,
            to_json(w.created_at) #>> '{}' as "createdAt",
            (select count(*)::int from throughline.webhook_delivery d where d.webhook_id = w.id and d.state = 'PENDING') as pending,
            (select count(*)::int from throughline.webhook_delivery d where d.webhook_id = w.id and d.state = 'FAILED') as failed
       from throughline.webhook w order by w.id`);
  return rows;
}

/** The newest deliveries of a webhook (optionally in one state), newest first. */
export function webhookDeliveries(db: Queryable, webhookId: string, opts: { state?: string | null; limit?: number } = {}): Promise<WebhookDeliveryInfo[]> {
  return withDbErrors(async () => {
    const { rows } = await db.query(
      `select d.id::text, d.event, d.token::text, d.state, d.attempts, d.max_attempts as "maxAttempts",
              d.last_status_code as "lastStatusCode", d.last_error as "lastError",
              to_json(d.created_at) #>> '{}' as "createdAt",
              case when d.state = 'PENDING' then to_json(d.next_attempt_at) #>> '{}' end as "nextAttemptAt"
         from throughline.webhook_delivery d
        where d.webhook_id = $1::bigint and ($2::text is null or d.state = $2)
        order by d.id desc limit $3`,
      [webhookId, opts.state ?? null, opts.limit ?? 20]);
    return rows;
  });
}

/** Enables or disables a webhook; false when there is no such webhook. */
export async function setWebhookEnabled(db: Queryable, id: string, enabled: boolean): Promise<boolean> {
  try {
    await withDbErrors(() => db.query("select throughline.set_webhook_enabled($1::bigint, $2)", [id, enabled]));
    return true;
  } catch (e) {
    if (e instanceof ThroughlineError && e.kind === "not_found") return false;
    throw e;
  }
}

/** Deletes a webhook with its deliveries; false when there is no such webhook. */
export function deleteWebhook(db: Queryable, id: string): Promise<boolean> {
  return withDbErrors(async () => {
    const { rows } = await db.query("select throughline.delete_webhook($1::bigint) as deleted", [id]);
    return rows[0].deleted === true;
  });
}
