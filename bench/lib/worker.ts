// One worker PROCESS, as deployed: `node src/cli.ts worker` against the bench database, running the
// test workflows (THROUGHLINE_WORKFLOWS=test/fixtures/testWorkflows.ts). `root` may name another
// checkout (e.g. a git worktree with a worker-option change) to measure that worker instead.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

export interface WorkerProcess {
  pid: number;
  root: string;
  /** Rejects when the process exits (use in a race: a worker that dies fails the bench at once). */
  exited: Promise<never>;
  /** The last lines it wrote to stderr/stdout (warnings and errors only, LOG_LEVEL=warn). */
  output(): string;
  stop(): Promise<void>;
}

export function spawnWorker(opts: { databaseUrl: string; root: string; concurrency: number; extraEnv?: Record<string, string> }): WorkerProcess {
  let recent = "";
  const child: ChildProcess = spawn(process.execPath, [path.join(opts.root, "src/cli.ts"), "worker"], {
    cwd: opts.root,
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl,
      THROUGHLINE_WORKFLOWS: "test/fixtures/testWorkflows.ts",
      THROUGHLINE_WORKER_CONCURRENCY: String(opts.concurrency),
      LOG_LEVEL: "warn",
      ...opts.extraEnv,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (d: Buffer) => (recent = (recent + d.toString()).slice(-4000));
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  let stopping = false;
  const died = exited.then(() => {
    throw new Error(stopping ? "worker stopped" : `worker exited with code ${child.exitCode}:\n${recent}`);
  });
  died.catch(() => {});
  return {
    pid: child.pid!,
    root: opts.root,
    exited: died,
    output: () => recent,
    async stop() {
      stopping = true;
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
