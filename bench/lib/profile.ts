// Where the database time goes: pg_stat_statements (loaded with --profile), per run of A.
import type pg from "pg";

export interface StatementRow {
  toplevel: boolean;
  calls: number;
  callsPerRun: number;
  msPerRun: number;
  meanMs: number;
  query: string;
}

export async function topStatements(pool: pg.Pool, runs: number, limit = 25): Promise<StatementRow[]> {
  const { rows } = await pool.query(
    `select toplevel, calls::bigint as calls, total_exec_time as total, mean_exec_time as mean,
            regexp_replace(query, '\\s+', ' ', 'g') as query
     from pg_stat_statements s join pg_database d on d.oid = s.dbid
     where d.datname = current_database()
     order by total_exec_time desc limit $1`, [limit]);
  return rows.map((r) => ({
    toplevel: r.toplevel,
    calls: Number(r.calls),
    callsPerRun: Number(r.calls) / runs,
    msPerRun: r.total / runs,
    meanMs: r.mean,
    query: r.query.length > 110 ? r.query.slice(0, 107) + "..." : r.query,
  }));
}
