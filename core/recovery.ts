// Seed 001's request recovery for the GPU step, as pure rules the workflow applies after a failed attempt:
// MAX_RETRIES 3 with backoff min(30, 2^n) s; each retry dispatched ahead of fresh requests of its tier (Temporal
// priority one step higher per retry, so a retried request does not queue behind new ones); OUT_OF_MEMORY runs again
// alone (batch size 1) on a larger-VRAM fleet from the routing alternatives; MODEL_CORRUPTION and timeouts retry on
// the same fleet (the worker that found a corrupted model re-verifies it and reloads before it takes work again);
// failures no retry can fix end the request, and so does a retry that could not start before the request's deadline.
import { FAILURE_TYPES, type FailureType } from './errors';
import { GPU_SPECS, type GpuType } from './gpu';
import { TIER_PRIORITY_KEY, type Tier } from './tiers';

/**
 * A request whose attempts failed on this many different workers is quarantined (issue 10: poison requests). Three,
 * as the worker breaker's threshold: one failure is a worker's bad moment, three workers failing the same request is
 * the request. Only failures that say something about the request count: a failed run or GPU error, or a worker that
 * went silent while running it; not out-of-memory (it has its own path), not a corrupted model, not a shutdown.
 */
export const POISON_DISTINCT_WORKERS = 3;

/** Failure types that count towards a poison request, besides a heartbeat timeout. */
export const POISON_FAILURE_TYPES: ReadonlySet<FailureType> = new Set(['InferenceFailed', 'GpuError']);

/** Retries of the GPU step after its first attempt (seed 001 MAX_RETRIES). */
export const MAX_GPU_RETRIES = 3;

/** Backoff before retry `n` (1-based): min(30, 2^n) seconds. */
export function retryBackoffMs(retry: number): number {
  return Math.min(30, 2 ** retry) * 1000;
}

/** Temporal priority of retry `n`: one step ahead of its tier per retry, never past 1 (the highest). */
export function retryPriorityKey(tier: Tier, retry: number): number {
  return Math.max(1, TIER_PRIORITY_KEY[tier] - retry);
}

export interface RecoveryState {
  readonly tier: Tier;
  /** The fleets routing allows, in preference order (the chosen fleet first). */
  readonly fleets: readonly GpuType[];
  /** The fleet of the attempt that failed. */
  readonly current: GpuType;
  /** Retries already made. */
  readonly retries: number;
  /** ApplicationFailure type of the failure, when it has a known one; undefined for timeouts and unknown errors. */
  readonly failureType: FailureType | undefined;
  /** Whether the request already runs alone in its batch. */
  readonly soloBatch: boolean;
  /** Time left before the request's deadline, ms; undefined when it has none. */
  readonly msLeft?: number;
}

export type RecoveryPlan =
  | {
      readonly action: 'retry';
      readonly retry: number;
      readonly gpuType: GpuType;
      readonly soloBatch: boolean;
      readonly delayMs: number;
      readonly priorityKey: number;
      /** Why this path, for logs: `oom`, `model-corruption`, `standard`. */
      readonly path: 'oom' | 'model-corruption' | 'standard';
    }
  | { readonly action: 'give-up'; readonly reason: 'non-retryable' | 'retries-exhausted' | 'deadline' };

/** The first allowed fleet with more device memory than `current`, or `current` when there is none. */
export function largerFleet(fleets: readonly GpuType[], current: GpuType): GpuType {
  return fleets.find((gpu) => GPU_SPECS[gpu].vramGb > GPU_SPECS[current].vramGb) ?? current;
}

/** What to do after a failed GPU attempt. */
export function planRecovery(state: RecoveryState): RecoveryPlan {
  const { failureType } = state;
  if (failureType !== undefined && !FAILURE_TYPES[failureType].retryable) {
    return { action: 'give-up', reason: 'non-retryable' };
  }
  if (state.retries >= MAX_GPU_RETRIES) return { action: 'give-up', reason: 'retries-exhausted' };
  const retry = state.retries + 1;
  // A retry whose backoff alone runs past the deadline could never finish in time: end the request now.
  if (state.msLeft !== undefined && retryBackoffMs(retry) >= state.msLeft)
    return { action: 'give-up', reason: 'deadline' };
  const common = {
    action: 'retry',
    retry,
    delayMs: retryBackoffMs(retry),
    priorityKey: retryPriorityKey(state.tier, retry),
  } as const;
  if (failureType === 'OutOfMemory') {
    return { ...common, path: 'oom', gpuType: largerFleet(state.fleets, state.current), soloBatch: true };
  }
  const path = failureType === 'ModelCorrupted' ? 'model-corruption' : 'standard';
  return { ...common, path, gpuType: state.current, soloBatch: state.soloBatch };
}
