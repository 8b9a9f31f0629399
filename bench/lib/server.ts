// The API server as its own PROCESS, as deployed: `node src/cli.ts serve` with DATABASE_URL, PORT=0
// (the kernel picks a free port) and the test workflows; its URL is read from what it prints
// ("GraphQL:    http://127.0.0.1:PORT/graphql"). Auth is the default (API keys required).
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

export interface ServerProcess {
  pid: number;
  /** http://host:port (no path). */
  url: string;
  output(): string;
  stop(): Promise<void>;
}

export async function spawnServer(opts: { databaseUrl: string; root: string; timeoutMs?: number }): Promise<ServerProcess> {
  let recent = "";
  const child: ChildProcess = spawn(process.execPath, [path.join(opts.root, "src/cli.ts"), "serve"], {
    cwd: opts.root,
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl,
      PORT: "0",
      HOST: "127.0.0.1",
      THROUGHLINE_WORKFLOWS: "test/fixtures/testWorkflows.ts",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`throughline serve printed no URL within ${(opts.timeoutMs ?? 60_000) / 1000} s:\n${recent}`)), opts.timeoutMs ?? 60_000);
    const keep = (d: Buffer) => {
      recent = (recent + d.toString()).slice(-4000);
      const m = /GraphQL: +(http:\/\/\S+)\/graphql/.exec(recent);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`throughline serve exited (${code}) before printing its URL:\n${recent}`));
    });
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  return { pid: child.pid!, url, output: () => recent, stop };
}
