// The worker: Graphile Worker claims jobs (doorbells carrying {stepId, attempt}); we claim the
// step attempt in our own tables, run the task, and record its end. Leases, heartbeats, attempts and
// results live in throughline.step, so a crashed worker's step is retried after a short lease
// rather than after Graphile Worker's 4-hour lock, and its late writes are refused.
import { randomUUID } from "node:crypto";
import os from "node:os";
import pg from "pg";
import { z } from "zod";
import { run as runGraphileWorker, parseCronItems, type Runner, type TaskList } from "graphile-worker";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { beginStep, failStep, finishStep, heartbeatSteps, type ClaimedStep } from "../db/steps.ts";
import { purgeRuns, reclaimExpiredLeases, resumeWebhookDeliveries, timeOutSteps } from "../db/maintenance.ts";
import { isNotApplicable, TerminalError, type AnyTask } from "./task.ts";
import { workerLogger } from "./workerLogger.ts";
import { isConnectionLoss } from "./connectionLossGuard.ts";
import { sqlErrorKind } from "../db/errors.ts";
import { webhookDeliveryTask, webhookDeliveryTaskIdentifier } from "./webhookDelivery.ts";

const jobPayload = z.object({ stepId: z.union([z.number().int(), z.string().regex(/^\d+$/)]), attempt: z.number().int().min(1) });

export const maintenanceTaskIdentifier = "throughline_maintenance";

export interface WorkerOptions {
  pool: pg.Pool;
  config: Pick<Config, "THROUGHLINE_WORKER_CONCURRENCY" | "THROUGHLINE_LEASE_SECONDS" | "THROUGHLINE_RECLAIM_INTERVAL_SECONDS" | "THROUGHLINE_INLINE_CLAIMS"
    | "THROUGHLINE_MAINTENANCE_CRON" | "THROUGHLINE_RETENTION_HOURS" | "THROUGHLINE_PURGE_BATCH_SIZE">;
  tasks: AnyTask[];
  log: Logger;
  workerId?: string;
}

export interface ThroughlineWorker {
  workerId: string;
  /** Attempts this process is running right now. */
  inFlight(): number;
  stop(): Promise<void>;
}

interface Running {
  stepId: string;
  attempt: number;
  abort: AbortController;
}

export async function startWorker(options: WorkerOptions): Promise<ThroughlineWorker> {
  const { pool, config, log: baseLog } = options;
  const workerId = options.workerId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const log = baseLog.child({ component: "worker", workerId });
  const lease = config.THROUGHLINE_LEASE_SECONDS;
  const running = new Map<string, Running>();

  const tasksById = new Map(options.tasks.map((t) => [t.identifier, t]));
  const taskIds = [...tasksById.keys()];

  /**
   * Runs a claimed attempt and records its end. Completing it may hand this worker the steps it made
   * runnable (finish_step's inline claims): they run next, in parallel, each with its own lease.
   * Returns those claims for the caller to run.
   */
  const execute = async (claim: ClaimedStep): Promise<ClaimedStep[]> => {
    const { stepId, attempt } = claim;
    const key = `${stepId}:${attempt}`;
    const abort = new AbortController();
    running.set(key, { stepId, attempt, abort });
    const stepLog = log.child({ token: claim.token, step: claim.step, attempt });
    try {
      const task = tasksById.get(claim.task);
      let result: unknown;
      let error: unknown;
      try {
        if (!task) throw new TerminalError(`This worker has no task "${claim.task}" for ${claim.step}`);
        const input = task.input.safeParse(claim.input);
        if (!input.success) {
          throw new TerminalError(`Invalid run input for ${claim.step}: ${z.prettifyError(input.error)}`);
        }
        result = await task.run({
          token: claim.token, step: claim.step, attempt, maxAttempts: claim.maxAttempts, workflow: claim.workflow,
          subject: claim.subject, input: input.data, upstream: claim.upstream, signal: abort.signal, log: stepLog, db: pool,
        });
        if (!isNotApplicable(result) && task.output) {
          const output = task.output.safeParse(result);
          if (!output.success) throw new TerminalError(`${claim.step} produced invalid output: ${z.prettifyError(output.error)}`);
          result = output.data;
        }
        if (!isNotApplicable(result)) {
          try {
            JSON.stringify(result ?? null);
          } catch (e) {
            throw new TerminalError(`${claim.step} produced output that cannot be stored as JSON: ${(e as Error).message}`);
          }
        }
      } catch (e) {
        error = e;
      }
      // Persist first: the result and the status commit together; everything that reacts to them
      // (dependents, listeners, subscribers) hears of it only after this commit.
      if (error === undefined) {
        let finished;
        try {
          finished = await finishStep(pool, {
            // A stopping worker takes on no more steps: what it claims now, another worker would
            // have to reclaim after the lease.
            stepId, attempt, workerId, leaseSeconds: lease, claimMax: stopping ? 0 : config.THROUGHLINE_INLINE_CLAIMS, tasks: taskIds,
            ...(isNotApplicable(result) ? { outcome: "NOT_APPLICABLE", reason: result.reason } : { outcome: "COMPLETED", output: result ?? null }),
          });
        } catch (e) {
          // The database refused the output itself (e.g. a \u0000 in a string, or too large): the step's
          // own fault, reported as such, not a lost worker.
          const kind = sqlErrorKind((e as { code?: unknown }).code);
          if (kind !== "invalid" && kind !== "too_large") throw e;
          const { message, detail } = e as { message: string; detail?: string };
          const reason = `${claim.step} produced output the database refused: ${message}${detail ? ` (${detail})` : ""}`;
          const outcome = await failStep(pool, stepId, attempt, reason, false);
          stepLog.warn({ outcome, err: e }, "step output refused");
          return [];
        }
        // Held from this moment: in `running`, so heartbeats keep their leases.
        for (const next of finished.claimed) running.set(`${next.stepId}:${next.attempt}`, { stepId: next.stepId, attempt: next.attempt, abort: new AbortController() });
        if (finished.applied) stepLog.debug({ claimed: finished.claimed.length }, isNotApplicable(result) ? "step not applicable" : "step completed");
        else stepLog.info("late result refused (attempt no longer current)");
        return finished.claimed;
      }
      const terminal = error instanceof TerminalError;
      const message = error instanceof Error ? error.message : String(error);
      const outcome = await failStep(pool, stepId, attempt, message, !terminal);
      stepLog.warn({ outcome, err: error }, "step attempt failed");
      return [];
    } finally {
      running.delete(key);
    }
  };

  /** Runs claimed steps and, in turn, what they claim, until the chain ends. Errors stay with their step. */
  const executeChain = async (claims: ClaimedStep[]): Promise<void> => {
    await Promise.all(claims.map(async (claim) => {
      let next: ClaimedStep[];
      try {
        next = await execute(claim);
      } catch (err) {
        // Its result could not be recorded (e.g. the database went away): its lease will run out and
        // the step is retried; the steps around it are not affected.
        log.warn({ err, stepId: claim.stepId, attempt: claim.attempt }, "could not record a step's end; its lease will expire and it will be retried");
        return;
      }
      await executeChain(next);
    }));
  };

  const runStep = (task: AnyTask) => async (payload: unknown) => {
    const parsed = jobPayload.safeParse(payload);
    if (!parsed.success) {
      // Not ours to retry: a job we did not write. Log and let Graphile Worker drop it.
      log.error({ payload, task: task.identifier }, "ignoring a job whose payload is not {stepId, attempt}");
      return;
    }
    const claim = await beginStep(pool, String(parsed.data.stepId), parsed.data.attempt, workerId, lease);
    if (!claim) {
      log.debug({ stepId: parsed.data.stepId, attempt: parsed.data.attempt }, "attempt no longer current or already claimed; nothing to do");
      return;
    }
    // The job's own step: an error recording its end fails the job (Graphile Worker retries it, and
    // the retry finds the attempt claimed: the lease sweep takes over). Its successors run after it.
    const next = await execute({ ...claim, task: task.identifier });
    await executeChain(next);
  };

  const taskList: TaskList = {};
  for (const task of options.tasks) taskList[task.identifier] = runStep(task);
  taskList[maintenanceTaskIdentifier] = async () => {
    const timedOut = await timeOutSteps(pool);
    const purged = await purgeRuns(pool, config.THROUGHLINE_RETENTION_HOURS, config.THROUGHLINE_PURGE_BATCH_SIZE);
    const webhooksResumed = await resumeWebhookDeliveries(pool);
    log.info({ timedOut, purged, webhooksResumed }, "maintenance done");
  };
  // Webhooks: a separate job per delivery; its failures are recorded in our tables, never a step's.
  taskList[webhookDeliveryTaskIdentifier] = webhookDeliveryTask({ pool, log: baseLog });

  const runnerOptions = {
    pgPool: pool,
    concurrency: config.THROUGHLINE_WORKER_CONCURRENCY,
    taskList,
    // job_key makes the cron job single per tick across instances (Graphile Worker's cron is
    // already deduplicated by its known_crontabs table; the key guards manual triggers too).
    parsedCronItems: parseCronItems([{
      task: maintenanceTaskIdentifier,
      match: config.THROUGHLINE_MAINTENANCE_CRON,
      options: { backfillPeriod: 0, maxAttempts: 1, jobKey: maintenanceTaskIdentifier, jobKeyMode: "replace" as const },
    }]),
    noHandleSignals: true,
    logger: workerLogger(baseLog),
    // Finished jobs are recorded together (one transaction per tick). Not localQueue: its batch
    // fetch ends the whole runner when the database restarts; and with inline claims a run needs
    // about one Graphile job, so batching the fetch buys little.
    preset: { worker: { completeJobBatchDelay: 0 } },
  };
  let stopping = false;
  let runner: Runner = await runGraphileWorker(runnerOptions);

  // Replacing the runner, for both reasons below, goes through one queue: a replacement happens
  // only if the runner it replaces is still the current one, and a runner started while we stop is
  // stopped at once, so there is never a second runner nobody stops.
  let replacing: Promise<void> = Promise.resolve();
  const replaceRunner = (expected: Runner, why: string): Promise<void> => {
    const next = replacing.then(async () => {
      if (stopping || runner !== expected) return;
      const fresh = await runGraphileWorker(runnerOptions);
      if (stopping) {
        await fresh.stop().catch(() => {});
        return;
      }
      runner = fresh;
      supervise(fresh);
      await expected.stop().catch(() => {});
      log.info(`Graphile Worker's runner restarted: ${why}`);
    });
    replacing = next.catch(() => {});
    return next;
  };

  // Graphile Worker's runner stops itself on some database errors (e.g. during a Postgres restart).
  // A worker process must outlive those: start it again until we are told to stop.
  const supervise = (r: Runner) => {
    r.promise.then(() => r, () => r).then(async (ended) => {
      while (!stopping && ended === runner) {
        log.warn("Graphile Worker's runner stopped unexpectedly; restarting it in 1 s");
        await new Promise((resolve) => setTimeout(resolve, 1000));
        try {
          await replaceRunner(ended, "it had stopped unexpectedly");
        } catch (err) {
          log.warn({ err }, "could not restart Graphile Worker's runner yet");
        }
      }
    });
  };
  supervise(runner);

  // Heartbeats keep our leases; an attempt missing from the answer lost its lease (reclaimed
  // elsewhere): abort it so the task stops, and its result will be refused anyway.
  const heartbeat = setInterval(() => {
    const steps = [...running.values()];
    if (steps.length === 0) return;
    // A step has one current attempt: if this worker still runs an older attempt of a step it has
    // claimed again (the old one lost its lease and hangs), the answer's step id is the new one's.
    const newest = new Map<string, number>();
    for (const s of steps) newest.set(s.stepId, Math.max(newest.get(s.stepId) ?? 0, s.attempt));
    heartbeatSteps(pool, workerId, steps, lease).then((held) => {
      for (const s of steps) if (!held.has(s.stepId) || s.attempt < newest.get(s.stepId)!) s.abort.abort(new Error("lease lost"));
    }, (err) => log.warn({ err }, "heartbeat failed"));
  }, (lease * 1000) / 3);

  // Reclaiming dead attempts is cheap and must happen within about one lease, which is finer than
  // cron's minute; every worker sweeps, and SKIP LOCKED plus the attempt fence keep that safe.
  //
  // The sweep also tells when the database went away and came back. Graphile Worker's individual
  // workers can exit on such an outage without its runner ending (and then nothing takes jobs any
  // more), so after an outage we start a fresh runner and stop the old one; the attempt fence makes
  // the overlap harmless.
  let databaseWasDown = false;
  const restartRunner = () => {
    replaceRunner(runner, "the database came back").catch((err) => {
      databaseWasDown = true; // try again after the next successful sweep
      log.warn({ err }, "could not restart Graphile Worker's runner yet");
    });
  };
  const reclaim = setInterval(() => {
    reclaimExpiredLeases(pool, lease).then(({ steps, webhookJobs }) => {
      if (databaseWasDown && !stopping) {
        databaseWasDown = false;
        restartRunner();
      }
      if (steps > 0) log.info({ reclaimed: steps }, "retrying attempts whose worker was lost");
      if (webhookJobs > 0) log.info({ released: webhookJobs }, "releasing webhook deliveries whose worker was lost");
    }, (err) => {
      // Only a lost connection says the database went away; a deadlock or a statement error in the
      // sweep does not, and must not restart the runner.
      if (isConnectionLoss(err)) databaseWasDown = true;
      log.warn({ err }, "lease sweep failed");
    });
  }, config.THROUGHLINE_RECLAIM_INTERVAL_SECONDS * 1000);

  log.info({ concurrency: config.THROUGHLINE_WORKER_CONCURRENCY, tasks: Object.keys(taskList), leaseSeconds: lease }, "worker started");

  let stopped: Promise<void> | undefined;
  return {
    workerId,
    inFlight: () => running.size,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(reclaim);
        await replacing; // a replacement under way finishes (or stops what it started) first
        // Graphile Worker waits for the running jobs (each with its chain of claimed steps): their
        // leases are kept alive until then, or another worker would take them over mid-step.
        await runner.stop().catch((err: unknown) => log.debug({ err }, "runner was already stopped"));
        clearInterval(heartbeat);
        log.info("worker stopped");
      })();
      return stopped;
    },
  };
}
