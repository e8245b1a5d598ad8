// Figures of one segment from its request records (percentiles, throughput, losses, duplicates, failures by code)
// and the Atelier-to-floor ratios. Field names are the JSON line's (snake_case), so the report prints them as is.
import { verdict, type RequestRecord } from './records';

/** Nearest-rank percentile (p in 0..100); null for no values. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? null;
}

export interface SegmentFigures {
  sent: number;
  completed: number;
  failed: number;
  lost: number;
  /** Terminal frames beyond the first, summed over requests. */
  duplicates: number;
  /** Frames whose seq the request had already received. */
  duplicate_seqs: number;
  failures: Record<string, number>;
  accept_p50_ms: number | null;
  accept_p99_ms: number | null;
  queue_wait_p50_ms: number | null;
  queue_wait_p99_ms: number | null;
  e2e_p50_ms: number | null;
  e2e_p99_ms: number | null;
  e2e_max_ms: number | null;
  /** Completed requests / (last completion - first send), per second. */
  throughput_per_s: number | null;
  /** Step pattern: the same latency figures for each target rate. */
  by_rate?: RateFigures[];
}

export interface RateFigures {
  rate: number;
  sent: number;
  completed: number;
  lost: number;
  e2e_p50_ms: number | null;
  e2e_p99_ms: number | null;
}

const ms = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);

export function segmentFigures(records: readonly RequestRecord[], timeoutMs: number): SegmentFigures {
  const sent = records.filter((r) => r.sentAt !== undefined);
  const verdicts = sent.map((r) => verdict(r, timeoutMs));
  const completed = sent.filter((_, i) => verdicts[i] === 'completed');
  const failures: Record<string, number> = {};
  sent.forEach((r, i) => {
    if (verdicts[i] === 'failed')
      failures[r.failureCode ?? 'UNKNOWN'] = (failures[r.failureCode ?? 'UNKNOWN'] ?? 0) + 1;
  });
  const span = (from: keyof RequestRecord, to: keyof RequestRecord, rs: readonly RequestRecord[]): number[] =>
    rs.flatMap((r) => {
      const a = r[from];
      const b = r[to];
      return typeof a === 'number' && typeof b === 'number' ? [b - a] : [];
    });
  const e2e = span('sentAt', 'terminalAt', completed);
  const accept = span('sentAt', 'acceptedAt', sent);
  const queue = span('acceptedAt', 'generatingAt', sent);
  const figures: SegmentFigures = {
    sent: sent.length,
    completed: completed.length,
    failed: verdicts.filter((v) => v === 'failed').length,
    lost: verdicts.filter((v) => v === 'lost').length,
    duplicates: sent.reduce((n, r) => n + Math.max(0, r.terminals - 1), 0),
    duplicate_seqs: sent.reduce((n, r) => n + r.duplicateSeqs, 0),
    failures,
    accept_p50_ms: ms(percentile(accept, 50)),
    accept_p99_ms: ms(percentile(accept, 99)),
    queue_wait_p50_ms: ms(percentile(queue, 50)),
    queue_wait_p99_ms: ms(percentile(queue, 99)),
    e2e_p50_ms: ms(percentile(e2e, 50)),
    e2e_p99_ms: ms(percentile(e2e, 99)),
    e2e_max_ms: ms(percentile(e2e, 100)),
    throughput_per_s: throughput(sent, completed),
  };
  const rates = [...new Set(records.map((r) => r.rate).filter((r): r is number => r !== null))];
  if (rates.length > 1) figures.by_rate = rates.map((rate) => rateFigures(rate, records, timeoutMs));
  return figures;
}

function rateFigures(rate: number, records: readonly RequestRecord[], timeoutMs: number): RateFigures {
  const sent = records.filter((r) => r.rate === rate && r.sentAt !== undefined);
  const done = sent.filter((r) => verdict(r, timeoutMs) === 'completed');
  const e2e = done.map((r) => (r.terminalAt ?? 0) - (r.sentAt ?? 0));
  return {
    rate,
    sent: sent.length,
    completed: done.length,
    lost: sent.filter((r) => verdict(r, timeoutMs) === 'lost').length,
    e2e_p50_ms: ms(percentile(e2e, 50)),
    e2e_p99_ms: ms(percentile(e2e, 99)),
  };
}

/** Completed requests per second from the first send to the last completion; null when nothing completed. */
export function throughput(sent: readonly RequestRecord[], completed: readonly RequestRecord[]): number | null {
  const firstSend = Math.min(...sent.map((r) => r.sentAt ?? Infinity));
  const lastDone = Math.max(...completed.map((r) => r.terminalAt ?? -Infinity));
  if (completed.length === 0 || !(lastDone > firstSend)) return null;
  return Math.round((completed.length / ((lastDone - firstSend) / 1000)) * 100) / 100;
}

/** a / b rounded, or null when either is missing or b is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined, digits = 3): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  const scale = 10 ** digits;
  return Math.round((a / b) * scale) / scale;
}

/** Mean of the values, or null for none. */
export function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}
