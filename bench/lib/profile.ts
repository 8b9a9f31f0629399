// Where the database time goes: pg_stat_statements (loaded with --profile), per run of A.
import type pg from "pg";

export interface StatementRow {
  toplevel: boolean;
  calls: number;
  callsPerRun: number;
  msPerRun: number;
  meanMs: number;
  /** WAL written per run by this statement (bytes), and full-page images among it. */
  walBytesPerRun: number;
  walFpiPerRun: number;
  query: string;
}

export async function topStatements(pool: pg.Pool, runs: number, limit = 25): Promise<StatementRow[]> {
  const { rows } = await pool.query(
    `select toplevel, calls::bigint as calls, total_exec_time as total, mean_exec_time as mean,
            wal_bytes::bigint as wal_bytes, wal_fpi::bigint as wal_fpi,
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
    walBytesPerRun: Number(r.wal_bytes) / runs,
    walFpiPerRun: Number(r.wal_fpi) / runs,
    query: r.query.length > 110 ? r.query.slice(0, 107) + "..." : r.query,
  }));
}

export interface WaitSample {
  what: string;
  share: number;
}

/**
 * Samples pg_stat_activity every `everyMs` until stopped: what the bench database's backends are
 * doing (active and running on CPU, waiting for a lock, for the WAL flush, idle in transaction, …)
 * and in which statement. The shares say where backend time goes. `url` should name another
 * database of the server, so that the samples do not count as the bench database's transactions.
 */
export function sampleWaits(url: string, database: string, everyMs = 10): { stop(): Promise<{ samples: number; top: WaitSample[] }> } {
  let stopped = false;
  const counts = new Map<string, number>();
  let samples = 0;
  const done = (async () => {
    const pg = (await import("pg")).default;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      while (!stopped) {
        const { rows } = await client.query(
          `select state, coalesce(wait_event_type || ':' || wait_event, 'CPU') as wait, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) as query
           from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend'
             and state <> 'idle'`, [database]);
        samples++;
        for (const r of rows) {
          const key = `${r.state === "active" ? r.wait : r.state} | ${r.query}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        await new Promise((r) => setTimeout(r, everyMs));
      }
    } finally {
      await client.end();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)
        .map(([what, n]) => ({ what, share: n / samples }));
      return { samples, top };
    },
  };
}
