// Domain data of the reference workflows (sql/current/700-reference_domain.sql).
import type pg from "pg";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

export interface Component {
  bomRef?: string | null;
  type: string;
  name: string;
  version?: string | null;
  purl?: string | null;
}

export async function recordComponents(db: Queryable, project: string, token: string, components: Component[]): Promise<number> {
  const { rows } = await db.query("select throughline.record_components($1::text, $2::uuid, $3::jsonb) as n",
    [project, token, JSON.stringify(components)]);
  return rows[0].n;
}

export async function projectComponents(db: Queryable, project: string): Promise<Component[]> {
  const { rows } = await db.query(
    `select bom_ref as "bomRef", type, name, version, purl from throughline.component where project = $1::text order by ordinal`,
    [project]);
  return rows;
}

export interface ProjectMetrics {
  components: number;
  vulnerabilities: number;
  critical: number;
  policyViolations: number;
}

export async function recordProjectMetrics(db: Queryable, project: string, token: string, m: ProjectMetrics): Promise<void> {
  await db.query("select throughline.record_project_metrics($1::text, $2::uuid, $3::integer, $4::integer, $5::integer, $6::integer)",
    [project, token, m.components, m.vulnerabilities, m.critical, m.policyViolations]);
}
