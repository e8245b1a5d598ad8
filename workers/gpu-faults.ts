// What a GPU worker does about each run's outcome, by seed 001's recovery actions:
// - every model fault goes to the model's circuit breaker, shared through Redis (runtime/model-breakers.ts);
// - every worker fault goes to this worker's own breaker (per_worker: 3 failures open it, 2 successes close it, 30 s
//   open). Open, the worker leaves its task queue (its queued work goes to the fleet's other workers) and is reported
//   for replacement; after 30 s it polls again as a half-open trial;
// - MODEL_CORRUPTION: the worker leaves its queue until it has fetched, verified and reloaded the model (the request
//   itself is retried by its workflow, which therefore lands on another worker); each failed reload counts against
//   the model's breaker;
// - GPU error: the worker stops taking work and restarts its process (the launcher or orchestrator starts it again,
//   and its models load afresh). If the device failed again within ten minutes of a restart, the error persists: the
//   worker stays out and is reported for replacement instead;
// - a worker that failed ten distinct requests within an hour is the likely fault: it is reported and drains.
import {
  WORKER_BREAKER,
  CLOSED_BREAKER,
  breakerRetryAfterMs,
  breakerState,
  recordFailure,
  recordSuccess,
  type BreakerSnapshot,
  type BreakerState,
} from '../core/circuit-breaker';
import type { ModelName } from '../core/models';
import { DistinctFailureWindow, MODEL_FAULTS, WORKER_FAULTS } from '../core/worker-health';
import type { InferenceOutcome } from '../activities/inference';
import type { InferenceBackend } from '../inference/backend';
import type { Logger } from '../runtime/logger';
import type { SupervisedWorker } from './worker-runtime';

/** A worker restarted for a GPU error that fails again this soon has a persistent fault. */
export const GPU_ERROR_PERSISTS_WITHIN_MS = 600_000;
/** Failed reloads of a corrupted model after which the worker is reported (it keeps trying). */
const RELOAD_REPORT_AFTER = 3;

export interface GpuFaultDeps {
  readonly supervised: Pick<SupervisedWorker, 'hold' | 'release'>;
  readonly backends: ReadonlyMap<ModelName, InferenceBackend>;
  readonly modelBreakers: { report(model: ModelName, ok: boolean): void };
  /** Records the report (Redis registry) and logs it; must not throw. */
  readonly reportForReplacement: (reason: string) => void;
  /**
   * Records a GPU error of this worker's device (kept across restarts, e.g. in Redis) and resolves with when the
   * previous one happened, if it did.
   */
  readonly recordGpuError: () => Promise<number | undefined>;
  /** Ends the process so that it restarts (GPU error). */
  readonly restartProcess: (reason: string) => void;
  /** Finishes the work in hand and exits (too many distinct failures). */
  readonly drain: (reason: string) => void;
  readonly log: Logger;
  readonly now?: () => number;
  /** Waits between reload attempts; tests shorten it. @default min(30 s, 2^n s) */
  readonly reloadBackoffMs?: (attempt: number) => number;
}

export class GpuFaults {
  private breaker: BreakerSnapshot = CLOSED_BREAKER;
  private halfOpenTimer: NodeJS.Timeout | undefined;
  private readonly reloading = new Set<ModelName>();
  private readonly distinctFailures = new DistinctFailureWindow();
  private gpuErrorHandled = false;
  private drained = false;
  private readonly now: () => number;

  constructor(private readonly deps: GpuFaultDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** The worker breaker's state now. */
  get breakerState(): BreakerState {
    return breakerState(this.breaker, WORKER_BREAKER, this.now());
  }

  describe(): Record<string, unknown> {
    return {
      breaker: this.breakerState,
      reloading: [...this.reloading],
      distinctFailuresLastHour: this.distinctFailures.size,
    };
  }

  /** Told by the inference activity how each run ended. */
  onOutcome(outcome: InferenceOutcome): void {
    const { model, failureType } = outcome;
    if (failureType === undefined) {
      this.deps.modelBreakers.report(model, true);
      this.setBreaker(recordSuccess(this.breaker, WORKER_BREAKER, this.now()));
      return;
    }
    if (MODEL_FAULTS.has(failureType)) this.deps.modelBreakers.report(model, false);
    if (!WORKER_FAULTS.has(failureType)) return;
    this.setBreaker(recordFailure(this.breaker, WORKER_BREAKER, this.now()));
    if (failureType === 'ModelCorrupted') void this.reload(model);
    if (failureType === 'GpuError') void this.onGpuError(outcome);
    if (this.distinctFailures.record(outcome.requestId, this.now()) && !this.drained) {
      this.drained = true;
      const reason = `failed ${this.distinctFailures.size} distinct requests within an hour`;
      this.deps.reportForReplacement(reason);
      this.deps.drain(reason);
    }
  }

  stop(): void {
    clearTimeout(this.halfOpenTimer);
  }

  private setBreaker(next: BreakerSnapshot): void {
    const before = this.breakerState;
    this.breaker = next;
    const after = this.breakerState;
    if (before === after) return;
    const { log } = this.deps;
    if (after === 'OPEN') {
      log.error({ from: before, to: after }, `worker circuit breaker ${before} -> OPEN: leaving the task queue`);
      this.deps.supervised.hold('breaker', 'worker circuit breaker open');
      this.deps.reportForReplacement(`worker circuit breaker opened (${before} -> OPEN)`);
      clearTimeout(this.halfOpenTimer);
      this.halfOpenTimer = setTimeout(
        () => {
          log.warn('worker circuit breaker HALF_OPEN: taking work again as a trial');
          this.deps.supervised.release('breaker');
        },
        breakerRetryAfterMs(this.breaker, WORKER_BREAKER, this.now()),
      );
      this.halfOpenTimer.unref();
    } else {
      log.warn({ from: before, to: after }, `worker circuit breaker ${before} -> ${after}`);
    }
  }

  /** Out of the task queue until the model is fetched, verified and loaded again. */
  private async reload(model: ModelName): Promise<void> {
    const backend = this.deps.backends.get(model);
    if (this.reloading.has(model) || !backend?.reloadModel) return;
    this.reloading.add(model);
    const hold = `reload:${model}`;
    this.deps.supervised.hold(hold, `reloading ${model} after a corrupted copy`);
    const backoff = this.deps.reloadBackoffMs ?? ((n: number) => Math.min(30, 2 ** n) * 1000);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await backend.reloadModel(model);
          this.deps.log.warn({ model, attempt }, 'model reloaded and verified; taking work again');
          return;
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          this.deps.log.error({ model, attempt, err: message }, 'model reload failed');
          // A copy that fails verification again is evidence against the model, as a failed run is: with every
          // worker of a fleet out reloading, failed reloads are what opens the model's breaker.
          this.deps.modelBreakers.report(model, false);
          if (attempt === RELOAD_REPORT_AFTER) {
            this.deps.reportForReplacement(`${model} failed to reload ${attempt} times: ${message}`);
          }
          await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
        }
      }
    } finally {
      this.reloading.delete(model);
      this.deps.supervised.release(hold);
    }
  }

  private async onGpuError(outcome: InferenceOutcome): Promise<void> {
    if (this.gpuErrorHandled) return;
    this.gpuErrorHandled = true;
    this.deps.supervised.hold('gpu-error', `GPU error during ${outcome.requestId}`);
    const previous = await this.deps.recordGpuError().catch(() => undefined);
    if (previous !== undefined && this.now() - previous < GPU_ERROR_PERSISTS_WITHIN_MS) {
      this.deps.reportForReplacement('GPU error again after a restart: the device fault persists');
      return; // stays held: a device that keeps failing takes no work until it is replaced
    }
    this.deps.restartProcess('GPU error: restarting the worker process to reset the device and reload models');
  }
}
