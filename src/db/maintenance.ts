// Maintenance calls (sql/current/400-maintenance.sql). Each is safe to run from many instances.
import type pg from "pg";

type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, "query">;

/**
 * The workers' lease sweep, one statement: retries step attempts whose lease expired and re-rings
 * steps whose job was lost (830-lost_doorbells.sql), and releases the Graphile Worker locks of webhook
 * deliveries whose worker was lost (release_lost_webhook_jobs).
 */
export async function reclaimExpiredLeases(db: Queryable, lostAfterSeconds: number): Promise<{ steps: number; webhookJobs: number }> {
  const { rows } = await db.query({
    name: "throughline/lease_sweep",
    text: `select throughline.reclaim_expired_leases(lost_after => make_interval(secs => $1::double precision)) as steps,
                  throughline.release_lost_webhook_jobs() as "webhookJobs"`,
    values: [lostAfterSeconds],
  });
  return rows[0];
}

export async function timeOutSteps(db: Queryable): Promise<number> {
  const { rows } = await db.query("select throughline.time_out_steps() as n");
  return rows[0].n;
}

/** Purges in batches until a batch comes back short; each batch is its own short transaction. */
export async function purgeRuns(db: Queryable, retentionHours: number, batchSize: number): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await db.query(
      "select throughline.purge_runs(now() - make_interval(hours => $1::integer), $2::integer) as n",
      [retentionHours, batchSize],
    );
    total += rows[0].n;
    if (rows[0].n < batchSize) return total;
  }
}

/** Re-enqueues webhook deliveries whose job went missing (sql/current/810-webhooks.sql). */
export async function resumeWebhookDeliveries(db: Queryable): Promise<number> {
  const { rows } = await db.query("select throughline.resume_webhook_deliveries() as n");
  return rows[0].n;
}
