// API keys → database roles. The server authenticates the key a client sends (X-Api-Key, as
// Dependency-Track clients do, or Authorization: Bearer) and runs the request as the key's role with
// the key's subjects in transaction settings; row-level security does the rest (see
// sql/current/820-access_control.sql). Nothing here decides what a key may see.
import type pg from "pg";
import type { IncomingHttpHeaders } from "node:http";

export type AuthMode = "keys" | "open";

export interface Principal {
  keyId: string | null;
  role: "reader" | "submitter" | "admin";
  /** Subjects (projects) the key is limited to; null for all. */
  subjects: string[] | null;
}

/** The open mode's principal: local development only, enabled explicitly, logged loudly. */
export const openModePrincipal: Principal = { keyId: null, role: "admin", subjects: null };

export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: "missing" | "invalid" };

/** The key a request carries: X-Api-Key, or Authorization: Bearer <key>. */
export function apiKeyFrom(headers: IncomingHttpHeaders): string | undefined {
  const header = headers["x-api-key"];
  const key = Array.isArray(header) ? header[0] : header;
  if (key) return key.trim();
  const authorization = headers.authorization;
  const bearer = authorization && /^Bearer\s+(\S+)$/i.exec(authorization);
  return bearer ? bearer[1] : undefined;
}

export interface Authenticator {
  authenticate(apiKey: string | undefined): Promise<AuthResult>;
}

/**
 * Authenticates keys against throughline.api_key, remembering answers for cacheMs (a revoked key
 * stops working within that time) so that polling clients cost one query, not two, per request.
 */
export function createAuthenticator(pool: Pick<pg.Pool, "query">, options: { mode: AuthMode; cacheMs?: number }): Authenticator {
  const cacheMs = options.cacheMs ?? 5_000;
  const cache = new Map<string, { at: number; result: AuthResult }>();
  return {
    async authenticate(apiKey) {
      if (!apiKey) return options.mode === "open" ? { ok: true, principal: openModePrincipal } : { ok: false, reason: "missing" };
      const hit = cache.get(apiKey);
      if (hit && Date.now() - hit.at < cacheMs) return hit.result;
      const { rows } = await pool.query({
        name: "throughline/authenticate_api_key",
        text: "select key_id, role, subjects from throughline.authenticate_api_key($1::text)",
        values: [apiKey],
      });
      const result: AuthResult = rows[0]
        ? { ok: true, principal: { keyId: rows[0].key_id, role: rows[0].role, subjects: rows[0].subjects } }
        : { ok: false, reason: "invalid" };
      if (cache.size > 10_000) cache.clear();
      cache.set(apiKey, { at: Date.now(), result });
      return result;
    },
  };
}

/** Postgres array literal of subjects; empty for "all subjects". */
function subjectsLiteral(subjects: string[] | null): string {
  if (!subjects) return "";
  return `{${subjects.map((s) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`).join(",")}}`;
}

/** The transaction settings a principal's requests run with (PostGraphile pgSettings). */
export function pgSettingsFor(principal: Principal): Record<string, string> {
  return {
    role: `throughline_${principal.role}`,
    "throughline.api_key_id": principal.keyId ?? "",
    "throughline.key_subjects": subjectsLiteral(principal.subjects),
  };
}

/**
 * Runs fn in one transaction with the given settings (pgSettingsFor: the key's role and scope), so
 * that row-level security applies; without settings, on the pool as it is (the owner).
 */
export async function withSettings<T>(pool: pg.Pool, settings: Record<string, string> | undefined, fn: (db: Pick<pg.Pool, "query">) => Promise<T>): Promise<T> {
  if (!settings) return fn(pool);
  const client = await pool.connect();
  try {
    await client.query("begin");
    const entries = Object.entries(settings);
    await client.query({
      name: `throughline/settings/${entries.length}`,
      text: `select ${entries.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(", ")}`,
      values: entries.flat(),
    });
    const result = await fn(client);
    await client.query("commit");
    return result;
  } catch (e) {
    await client.query("rollback").catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

/** What grafserv hands grafast.context: the HTTP request, or the WebSocket's upgrade request and connection params. */
export interface RequestContextLike {
  node?: { req?: { headers: IncomingHttpHeaders } };
  ws?: { request?: { headers: IncomingHttpHeaders }; normalizedConnectionParams?: IncomingHttpHeaders };
}

/** The key of a GraphQL request: its headers, or for a WebSocket its connection params (browsers cannot set headers there). */
export function apiKeyFromRequestContext(rc: RequestContextLike): string | undefined {
  if (rc.ws) return apiKeyFrom(rc.ws.normalizedConnectionParams ?? {}) ?? apiKeyFrom(rc.ws.request?.headers ?? {});
  return rc.node?.req ? apiKeyFrom(rc.node.req.headers) : undefined;
}

/** What a missing or invalid key is told (REST and GraphQL alike). */
export function authFailureMessage(reason: "missing" | "invalid"): string {
  return reason === "missing"
    ? "An API key is required: send it in the X-Api-Key header (create one with `throughline keys create`)."
    : "The API key is not valid (unknown, revoked or expired).";
}
