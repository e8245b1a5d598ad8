// Seed 001's worker health rules as pure functions: which failures count against what, when a health check's
// failures make a worker unhealthy, and when a worker has failed too many distinct requests and must leave its fleet.
// The GPU worker (workers/gpu-faults.ts, workers/gpu-health.ts) applies them; nothing here does I/O.
import type { FailureType } from './errors';

/** Seed 001 HEALTH_CHECK_CONFIG. */
export const HEALTH_CHECK = {
  /** Each probe runs this often, and the worker's heartbeats to Temporal and the registry are at most this far apart. */
  intervalMs: 10_000,
  /** A worker silent for this long is gone: Temporal's heartbeat timeout, and the registry entry's lifetime. */
  timeoutMs: 30_000,
  /** Consecutive failures of one probe before the worker is unhealthy (and stops taking work). */
  consecutiveFailuresBeforeUnhealthy: 3,
} as const;

/** Failures that say something about the model or its files: they count against the model's circuit breaker. */
export const MODEL_FAULTS: ReadonlySet<FailureType> = new Set(['ModelCorrupted', 'ModelNotFound', 'InferenceFailed']);

/**
 * Failures that say something about this worker: they count against its own circuit breaker. Not out-of-memory (the
 * request's size), not ModelNotFound (the fleet's configuration), not a shutdown hand-back.
 */
export const WORKER_FAULTS: ReadonlySet<FailureType> = new Set(['ModelCorrupted', 'InferenceFailed', 'GpuError']);

/** One probe's record: its last result and how many times in a row it has failed. */
export interface ProbeRecord {
  readonly ok: boolean;
  readonly consecutiveFailures: number;
  readonly detail: string;
  /** When it last ran, ms since epoch. */
  readonly at: number;
}

/** The record after one more run of the probe. */
export function recordProbe(previous: ProbeRecord | undefined, ok: boolean, detail: string, now: number): ProbeRecord {
  return { ok, detail, at: now, consecutiveFailures: ok ? 0 : (previous?.consecutiveFailures ?? 0) + 1 };
}

/** Whether a probe has failed often enough in a row to take the worker out (seed: 3). */
export function probeUnhealthy(record: ProbeRecord | undefined): boolean {
  return (record?.consecutiveFailures ?? 0) >= HEALTH_CHECK.consecutiveFailuresBeforeUnhealthy;
}

/**
 * Poison protection on the worker's side (issue 10): a worker that failed this many distinct requests within the
 * window is itself the likely fault, and drains. Ten an hour: far above what one bad request can cause (it fails at
 * most once per worker before the workflow quarantines it), far below a worker that fails everything it takes.
 */
export const WORKER_DISTINCT_FAILURES = { limit: 10, windowMs: 3_600_000 } as const;

/** Distinct requests failed within a sliding window; `record` answers whether the limit is reached. */
export class DistinctFailureWindow {
  private readonly failedAt = new Map<string, number>();

  constructor(
    readonly limit: number = WORKER_DISTINCT_FAILURES.limit,
    readonly windowMs: number = WORKER_DISTINCT_FAILURES.windowMs,
  ) {}

  /** Records a failed request; true when the distinct failures within the window reach the limit. */
  record(requestId: string, now: number): boolean {
    this.failedAt.set(requestId, now);
    for (const [id, at] of this.failedAt) if (now - at >= this.windowMs) this.failedAt.delete(id);
    return this.failedAt.size >= this.limit;
  }

  get size(): number {
    return this.failedAt.size;
  }
}
