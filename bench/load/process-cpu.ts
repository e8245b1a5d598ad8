// CPU time of the stack's processes (and of the bench itself) from /proc/<pid>/stat, so each segment can say how
// many CPU seconds every process spent per completed request. Linux only; elsewhere the figures are null.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface NamedProcess {
  readonly name: string;
  readonly pid: number;
}

/** CPU seconds by process name; null where the process could not be read (gone, another machine). */
export type CpuSnapshot = Record<string, number | null>;

let ticks: number | undefined;

/** The kernel's clock tick (USER_HZ), which /proc/<pid>/stat counts in; almost always 100. */
export function clockTicksPerSecond(): number {
  if (ticks === undefined) {
    try {
      const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      ticks = Number.isInteger(value) && value > 0 ? value : 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/**
 * utime + stime in ticks from the text of /proc/<pid>/stat. The command name (field 2) is in parentheses and may
 * itself contain spaces and parentheses, so fields are counted from the last `)`.
 */
export function parseProcStat(text: string): number | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // After the name: state is field 3, so utime (field 14) and stime (field 15) are the 12th and 13th.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : null;
}

export function cpuSeconds(pid: number): number | null {
  try {
    const total = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return total === null ? null : total / clockTicksPerSecond();
  } catch {
    return null;
  }
}

export function cpuSnapshot(processes: readonly NamedProcess[]): CpuSnapshot {
  return Object.fromEntries(processes.map((p) => [p.name, cpuSeconds(p.pid)]));
}

/** CPU seconds per completed request for each process, and their sum as `total`. */
export function cpuPerRequest(before: CpuSnapshot, after: CpuSnapshot, completed: number): CpuSnapshot {
  const out: CpuSnapshot = {};
  let total = 0;
  let known = false;
  for (const [name, end] of Object.entries(after)) {
    const start = before[name];
    if (start === null || start === undefined || end === null || completed === 0) {
      out[name] = null;
      continue;
    }
    out[name] = round((end - start) / completed);
    total += end - start;
    known = true;
  }
  out.total = known && completed > 0 ? round(total / completed) : null;
  return out;
}

const round = (x: number): number => Math.round(x * 100_000) / 100_000;
