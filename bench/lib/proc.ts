// Reading /proc: CPU time of a process tree and a process's peak resident set.
import { readdirSync, readFileSync } from "node:fs";

const ticksPerSecond = 100; // USER_HZ on Linux (getconf CLK_TCK); the same on every mainstream kernel.

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in ms. */
  selfMs: number;
  /** cutime + cstime (children that exited and were waited for), in ms. */
  childrenMs: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may contain spaces: split after the last ')'.
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // f[0] = state (field 3); utime is field 14 → f[11], stime f[12], cutime f[13], cstime f[14]; ppid field 4 → f[1].
  const ms = (i: number) => (Number(f[i]) * 1000) / ticksPerSecond;
  return { pid, ppid: Number(f[1]), selfMs: ms(11) + ms(12), childrenMs: ms(13) + ms(14) };
}

/**
 * CPU ms used so far by a server process and everything it forked: its own time, its reaped
 * children's time (backends that exited), and the live children's time. Deltas of this number are
 * the server's CPU cost over an interval, including connections that came and went.
 */
export function treeCpuMs(rootPid: number): number {
  const root = readStat(rootPid);
  if (!root) return Number.NaN;
  let total = root.selfMs + root.childrenMs;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s && s.ppid === rootPid) total += s.selfMs;
  }
  return total;
}

/** CPU ms (utime + stime) of one process. */
export function cpuMs(pid: number): number {
  return readStat(pid)?.selfMs ?? Number.NaN;
}

/** A field of /proc/<pid>/status in kB (e.g. VmHWM: peak RSS, VmRSS: current RSS). */
export function statusKb(pid: number, field: "VmHWM" | "VmRSS"): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
