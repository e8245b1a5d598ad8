// Arrival schedules of the load generator (open loop: a request is sent at its time whether or not earlier ones
// have finished, which is what exposes queueing) and the loop that fires them on time.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export type ArrivalPattern =
  | { readonly kind: 'paced'; readonly rate: number; readonly count: number }
  | { readonly kind: 'burst'; readonly count: number }
  | { readonly kind: 'step'; readonly rates: readonly number[]; readonly stepSeconds: number };

export interface Arrival {
  /** When to send, ms after the segment starts. */
  readonly offsetMs: number;
  /** The rate this request belongs to (paced, step), requests/s; null for a burst. */
  readonly rate: number | null;
}

/** Every request of a pattern with its send time, in order. */
export function arrivalSchedule(pattern: ArrivalPattern): Arrival[] {
  switch (pattern.kind) {
    case 'paced':
      return evenly(pattern.rate, pattern.count, 0);
    case 'burst':
      return Array.from({ length: pattern.count }, () => ({ offsetMs: 0, rate: null }));
    case 'step': {
      const out: Arrival[] = [];
      pattern.rates.forEach((rate, i) => {
        out.push(...evenly(rate, Math.round(rate * pattern.stepSeconds), i * pattern.stepSeconds * 1000));
      });
      return out;
    }
  }
}

function evenly(rate: number, count: number, startMs: number): Arrival[] {
  return Array.from({ length: count }, (_, i) => ({ offsetMs: startMs + (i * 1000) / rate, rate }));
}

export function describePattern(pattern: ArrivalPattern): string {
  switch (pattern.kind) {
    case 'paced':
      return `paced ${pattern.rate}/s x ${pattern.count} (${round(pattern.count / pattern.rate)} s)`;
    case 'burst':
      return `burst of ${pattern.count}`;
    case 'step':
      return `step ${pattern.rates.join(',')}/s, ${pattern.stepSeconds} s each`;
  }
}

const round = (x: number): number => Math.round(x * 10) / 10;

/**
 * Calls `fire` for each arrival at its time. When the process falls behind (a busy event loop), the overdue
 * requests go out at once rather than shifting the rest of the schedule, so the offered rate stays the planned one.
 */
export async function runArrivals(
  arrivals: readonly Arrival[],
  fire: (index: number, arrival: Arrival) => void,
  signal?: AbortSignal,
): Promise<void> {
  const start = performance.now();
  let next = 0;
  while (next < arrivals.length && signal?.aborted !== true) {
    const elapsed = performance.now() - start;
    for (let a = arrivals[next]; a !== undefined && a.offsetMs <= elapsed; a = arrivals[next]) {
      fire(next, a);
      next += 1;
    }
    const upcoming = arrivals[next];
    if (upcoming !== undefined) await sleep(Math.max(0, upcoming.offsetMs - (performance.now() - start)));
  }
}
