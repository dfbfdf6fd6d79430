// What a server process costs, read from /proc: CPU time (utime + stime) and resident memory
// (VmRSS), summed over a set of pids (nginx: master and workers).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)"; comm may contain spaces and parentheses.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** CPU seconds of these processes so far: user, system. */
export function cpuSplit(pids: number[]): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    // utime and stime are fields 14 and 15 of stat(5); f[0] is field 3 (state).
    if (f) {
      user += Number(f[11]);
      sys += Number(f[12]);
    }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK };
}

/** CPU seconds (user + system) of these processes so far. */
export function cpuSeconds(pids: number[]): number {
  const c = cpuSplit(pids);
  return c.user + c.sys;
}

/** Resident set size in KiB, summed. */
export function rssKiB(pids: number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      /* exited */
    }
  }
  return kib;
}

/** Direct children of pid (scan of /proc: works without CONFIG_PROC_CHILDREN). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && Number(f[1]) === pid) out.push(Number(name));
  }
  return out;
}
