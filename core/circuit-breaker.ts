// Seed 001's circuit breakers as pure state machines: per model (5 failures open it, 3 successes close it, 60 s open),
// per worker (3 / 2 / 30 s) and the global failure rate (above 10% of requests over 60 s). Pure (the caller passes
// the time), so the same rules run in the gateway, the workers and the workflow's activities, and a shared store
// (Redis) only has to keep the snapshot.
//
// CLOSED: work flows; consecutive failures are counted and a success resets them; at the threshold -> OPEN.
// OPEN: work is refused (routed elsewhere where possible); after the open time -> HALF_OPEN.
// HALF_OPEN: test traffic is let through; the success threshold in a row -> CLOSED; any failure -> OPEN again.

export type BreakerState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

/** Breaker states as numbers, for Prometheus gauges: 0 closed, 1 half-open, 2 open. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };

export interface BreakerPolicy {
  /** Consecutive failures that open a closed breaker. */
  readonly failureThreshold: number;
  /** Consecutive successes that close a half-open breaker. */
  readonly successThreshold: number;
  /** How long an open breaker refuses work before it lets test traffic through, ms. */
  readonly openMs: number;
}

/** Seed 001 `per_model`. */
export const MODEL_BREAKER: BreakerPolicy = { failureThreshold: 5, successThreshold: 3, openMs: 60_000 };
/** Seed 001 `per_worker`. */
export const WORKER_BREAKER: BreakerPolicy = { failureThreshold: 3, successThreshold: 2, openMs: 30_000 };

/** What a breaker remembers; `state` is as of the last transition (an OPEN one may be HALF_OPEN by now). */
export interface BreakerSnapshot {
  readonly state: BreakerState;
  /** Consecutive failures while CLOSED. */
  readonly failures: number;
  /** Consecutive successes while HALF_OPEN. */
  readonly successes: number;
  /** When it last opened, ms since epoch. */
  readonly openedAt?: number;
}

export const CLOSED_BREAKER: BreakerSnapshot = { state: 'CLOSED', failures: 0, successes: 0 };

/** The breaker's state at `now`: an OPEN breaker whose open time has passed is HALF_OPEN. */
export function breakerState(snapshot: BreakerSnapshot, policy: BreakerPolicy, now: number): BreakerState {
  if (snapshot.state === 'OPEN' && now - (snapshot.openedAt ?? 0) >= policy.openMs) return 'HALF_OPEN';
  return snapshot.state;
}

/** Whether work may go through at `now` (CLOSED, or HALF_OPEN test traffic). */
export function breakerAllows(snapshot: BreakerSnapshot, policy: BreakerPolicy, now: number): boolean {
  return breakerState(snapshot, policy, now) !== 'OPEN';
}

/** Milliseconds until an OPEN breaker lets test traffic through; 0 when it allows work now. */
export function breakerRetryAfterMs(snapshot: BreakerSnapshot, policy: BreakerPolicy, now: number): number {
  if (breakerState(snapshot, policy, now) !== 'OPEN') return 0;
  return Math.max(0, (snapshot.openedAt ?? now) + policy.openMs - now);
}

export function recordSuccess(snapshot: BreakerSnapshot, policy: BreakerPolicy, now: number): BreakerSnapshot {
  const state = breakerState(snapshot, policy, now);
  if (state === 'CLOSED') return snapshot.failures === 0 ? snapshot : { ...snapshot, failures: 0 };
  if (state === 'OPEN') return snapshot; // a late answer from before it opened changes nothing
  const successes = snapshot.successes + 1;
  return successes >= policy.successThreshold ? CLOSED_BREAKER : { state: 'HALF_OPEN', failures: 0, successes };
}

export function recordFailure(snapshot: BreakerSnapshot, policy: BreakerPolicy, now: number): BreakerSnapshot {
  const state = breakerState(snapshot, policy, now);
  if (state === 'OPEN') return snapshot;
  if (state === 'HALF_OPEN') return { state: 'OPEN', failures: 0, successes: 0, openedAt: now };
  const failures = snapshot.failures + 1;
  return failures >= policy.failureThreshold
    ? { state: 'OPEN', failures: 0, successes: 0, openedAt: now }
    : { ...snapshot, failures };
}

/**
 * Seed 001's global breaker: the share of requests that failed over the last 60 s, in one-second buckets. It opens
 * above 10%, and only once the window holds at least `minRequests`: two failures out of the first five requests after
 * a quiet night are not an outage, and shedding the relax tier for them would be.
 */
export const GLOBAL_BREAKER = { windowMs: 60_000, threshold: 0.1, minRequests: 20 } as const;

/** Requests that ended, and how many of them failed, within a window. */
export interface OutcomeCounts {
  readonly total: number;
  readonly failed: number;
}

/** Whether the global breaker is open for these counts: above the threshold, with enough requests to judge. */
export function failureRateOpen(
  counts: OutcomeCounts,
  policy: { readonly threshold: number; readonly minRequests: number } = GLOBAL_BREAKER,
): boolean {
  return counts.total >= policy.minRequests && counts.failed / counts.total > policy.threshold;
}

export class FailureRateWindow {
  private readonly buckets = new Map<number, { total: number; failed: number }>();

  constructor(
    readonly windowMs: number = GLOBAL_BREAKER.windowMs,
    readonly threshold: number = GLOBAL_BREAKER.threshold,
    readonly minRequests: number = GLOBAL_BREAKER.minRequests,
  ) {}

  record(failed: boolean, now: number): void {
    const second = Math.floor(now / 1000);
    const bucket = this.buckets.get(second) ?? { total: 0, failed: 0 };
    bucket.total++;
    if (failed) bucket.failed++;
    this.buckets.set(second, bucket);
    this.prune(now);
  }

  /** Requests and failures within the window ending at `now`. */
  counts(now: number): { total: number; failed: number } {
    this.prune(now);
    let total = 0;
    let failed = 0;
    for (const b of this.buckets.values()) {
      total += b.total;
      failed += b.failed;
    }
    return { total, failed };
  }

  /** Whether the global breaker is open at `now`. */
  isOpen(now: number): boolean {
    return failureRateOpen(this.counts(now), this);
  }

  private prune(now: number): void {
    const oldest = Math.floor((now - this.windowMs) / 1000);
    for (const second of this.buckets.keys()) if (second <= oldest) this.buckets.delete(second);
  }
}
