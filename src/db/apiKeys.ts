// API keys (sql/current/820-access_control.sql): create, list, revoke.
import type pg from "pg";
import { withDbErrors } from "./errors.ts";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: string;
  subjects: string[] | null;
  key_prefix: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export function createApiKey(db: Queryable, args: { name: string; role: string; subjects?: string[] | null; expiresAt?: string | null }): Promise<{ id: string; apiKey: string }> {
  return withDbErrors(async () => {
    const { rows } = await db.query("select id, api_key from throughline.create_api_key($1::text, $2::text, $3::text[], $4::timestamptz)",
      [args.name, args.role, args.subjects?.length ? args.subjects : null, args.expiresAt ?? null]);
    return { id: rows[0].id, apiKey: rows[0].api_key };
  });
}

export async function listApiKeys(db: Queryable): Promise<ApiKeyInfo[]> {
  const { rows } = await db.query(
    `select id, name, role, subjects, key_prefix, to_json(created_at) #>> '{}' as created_at,
            to_json(expires_at) #>> '{}' as expires_at, to_json(revoked_at) #>> '{}' as revoked_at
       from throughline.api_key order by created_at`);
  return rows;
}

export function revokeApiKey(db: Queryable, id: string): Promise<boolean> {
  return withDbErrors(async () => {
    const { rows } = await db.query("select throughline.revoke_api_key($1::uuid) as revoked", [id]);
    return rows[0].revoked === true;
  });
}
