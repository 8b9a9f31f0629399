// Separate Throughline processes for multi-instance tests: production runs several workers and
// servers as separate processes, so the tests that claim that behaviour do too.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { projectRoot } from "../src/config.ts";

export interface ThroughlineProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** What it printed on stdout only. */
  stdout(): string;
  /** Resolves when its output matches. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Runs `throughline <args>` with the project's Node (this process's) and the given environment. */
export function spawnThroughline(args: string[], env: Record<string, string>): ThroughlineProcess {
  const child = spawn(process.execPath, [path.join(projectRoot, "src/cli.ts"), ...args], {
    cwd: projectRoot,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let stdout = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const onData = (d: Buffer) => {
    output += d.toString();
    for (const w of [...waiters]) if (w.pattern.test(output)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => output,
    stdout: () => stdout,
    exited,
    kill: (signal = "SIGTERM") => void child.kill(signal),
    waitForOutput(pattern, timeoutMs = 30_000) {
      if (pattern.test(output)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} in output within ${timeoutMs} ms:\n${output.slice(-3000)}`)), timeoutMs);
        waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then(() => {
          clearTimeout(timer);
          if (!pattern.test(output)) reject(new Error(`exited before printing ${pattern}:\n${output.slice(-3000)}`));
        });
      });
    },
  };
}

export const testWorkflowsModule = path.join(projectRoot, "test/fixtures/testWorkflows.ts");
