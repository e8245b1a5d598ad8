// The `runInference` activity that GPU workers run: says `generating` the moment a GPU worker takes the request (so
// `queued` -> `generating` is the real queue wait), picks the backend that serves the requested model, runs it with
// cancellation (a cancelled request frees the GPU within one step) until the request's deadline if it has one,
// publishes throttled progress events to the client through Redis, and stages the PNGs in the object store. Only
// object keys go back to the workflow.
//
// Heartbeats have two purposes only: a dead worker is noticed within the heartbeat timeout (30 s) and its request
// retried elsewhere, and a cancel reaches the activity in a heartbeat's answer. Progress needs none: it goes through
// Redis. So the activity heartbeats on a timer (every `heartbeatIntervalMs`, 1 s), not per step: a request shorter
// than that sends none, a longer one about one a second, each carrying the last finished step for the Web UI.
import { context } from '@opentelemetry/api';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { InferenceActivities, InferenceInput, InferenceOutput } from '../core/activities';
import { generationParams } from '../core/generation-params';
import { isFailureType, type FailureType } from '../core/errors';
import { isRelaxLane, type GpuType } from '../core/gpu';
import type { ModelName } from '../core/models';
import type { RequestEventPublisher } from '../runtime/event-log';
import type { ObjectStore } from '../runtime/object-store';
import { activityFailure } from './failures';
import { currentEventLogId } from './notification';
import { announceStatus } from './request-events';
import { activityRunId, stagingImageKey } from '../runtime/object-keys';
import { InferenceError, type InferenceBackend, type InferenceHooks } from '../inference/backend';
import { RunDeadline } from './run-deadline';
import { atelierTracer } from '../runtime/tracer';

export interface InferenceActivityDeps {
  /** The backend serving each model on this worker; a model not in the map is not served here (ModelNotFound). */
  readonly backends: ReadonlyMap<ModelName, InferenceBackend>;
  readonly store: ObjectStore;
  readonly eventLog: RequestEventPublisher;
  /** The region of this worker, whose object store holds what it stages (InferenceOutput.region). */
  readonly region?: string;
  /** Names this worker in results and logs, e.g. `host:pid:a10g`. */
  readonly workerId: string;
  /** Least time between two progress events of one request (at most ~10 per second), milliseconds. @default 100 */
  readonly progressIntervalMs?: number;
  /**
   * Heartbeat period while a request runs, milliseconds. It bounds how long a cancelled request keeps the GPU
   * (about one period, plus the SDK's throttle), and stays far under the workflow's 30 s heartbeat timeout (seed 001
   * asks for at most 10 s). @default 1000
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * Told how long `backend.generate` took for each request it completed (the backend alone: no status, progress or
   * staging), for the worker's atelier_inference_seconds. Cancelled and failed runs are not inference times.
   */
  readonly onInferenceTimed?: (sample: InferenceTiming) => void;
  /**
   * Told how each run ended, for the worker's health rules (its own circuit breaker, the per-model breaker, the
   * reload of a corrupted model): a success, or a failure with its type. Not told of cancellations, nor of runs
   * handed back because the worker is shutting down: neither says anything about the model or the worker.
   */
  readonly onOutcome?: (outcome: InferenceOutcome) => void;
  /**
   * Resolves once the worker has no turbo or fast work in hand (workers/relax-lane.ts); a relax task waits for it
   * before it says `generating`, having come through a poll the lane allowed while the worker was idle. Rejects
   * with an AbortError when `signal` aborts. @default relax runs at once
   */
  readonly whenIdle?: (signal: AbortSignal) => Promise<void>;
}

/** How one run of `runInference` ended. */
export interface InferenceOutcome {
  readonly model: ModelName;
  readonly requestId: string;
  /** undefined for a success; the ApplicationFailure type (core/errors.ts) of a failure. */
  readonly failureType: FailureType | undefined;
}

export interface InferenceTiming {
  readonly model: ModelName;
  readonly gpuType: GpuType;
  readonly backend: string;
  readonly seconds: number;
}

/**
 * What `runInference` heartbeats: the last finished step, so operators see progress in the Web UI, and the worker,
 * so that the workflow knows which worker a request was on when its heartbeats stopped (poison-request quarantine).
 */
export interface InferenceHeartbeat {
  readonly step: number;
  readonly totalSteps: number;
  readonly workerId: string;
}

/**
 * Publishes progress events in step order without holding up the backend: a publish waits for the previous one,
 * steps that come sooner than the interval are skipped (the last step is always sent), and a failed publish is
 * logged and dropped because progress is advisory; terminal events travel separately through the workflow.
 */
class ProgressPublisher {
  private chain: Promise<void> = Promise.resolve();
  private lastSentAt = -Infinity;

  constructor(
    private readonly eventLog: RequestEventPublisher,
    private readonly logId: string,
    private readonly intervalMs: number,
    private readonly log: Context['log'],
  ) {}

  offer(step: number, totalSteps: number): void {
    const now = performance.now();
    if (step < totalSteps && now - this.lastSentAt < this.intervalMs) return;
    this.lastSentAt = now;
    this.chain = this.chain
      .then(() => this.eventLog.publish(this.logId, { type: 'progress', step, totalSteps }))
      .then(
        () => undefined,
        (err: unknown) => this.log.warn('Progress event not published', { step, error: String(err) }),
      );
  }

  /** Resolves once every offered event has been published (or dropped). */
  flush(): Promise<void> {
    return this.chain;
  }
}

/** What every failure of a run carries in its details: the worker it failed on (poison-request quarantine). */
export interface InferenceFailureDetails {
  readonly workerId: string;
}

/**
 * Backend failures become ApplicationFailures whose type the workflow maps to a client code (core/errors.ts), each
 * naming the worker. A run cut short because this worker is shutting down (its grace time is over) is handed back
 * as a retryable WorkerShutdown, so the workflow runs it elsewhere at once, instead of the server waiting out the
 * heartbeat timeout. A cancellation the client asked for passes through untouched: the SDK reports it as cancelled.
 */
function toActivityFailure(err: unknown, ctx: Context, workerId: string): unknown {
  const details: InferenceFailureDetails[] = [{ workerId }];
  if (ctx.cancellationDetails?.workerShutdown) {
    return activityFailure('WorkerShutdown', `Worker ${workerId} shut down during the run`, { details });
  }
  if (err instanceof InferenceError) return activityFailure(err.failureType, err.message, { cause: err, details });
  if (err instanceof ApplicationFailure || isAbortError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return activityFailure('InferenceFailed', message, { details, ...(err instanceof Error ? { cause: err } : {}) });
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/**
 * Records each stage the backend reports as a span under this activity's span (the trace context is the one the
 * activity runs in; stages are reported after the fact with their own start and end times).
 */
function stageTracer(input: InferenceInput): NonNullable<InferenceHooks['onStage']> {
  const parent = context.active();
  const attributes = { 'atelier.model': input.model, 'atelier.gpu_type': input.gpuType };
  return (stage, startMs, endMs) => {
    atelierTracer().startSpan(`inference.${stage}`, { startTime: startMs, attributes }, parent).end(endMs);
  };
}

export function createInferenceActivities(deps: InferenceActivityDeps): InferenceActivities {
  const progressIntervalMs = deps.progressIntervalMs ?? 100;
  const heartbeatIntervalMs = deps.heartbeatIntervalMs ?? 1000;

  return {
    async runInference(input: InferenceInput): Promise<InferenceOutput> {
      const ctx = Context.current();
      const backend = deps.backends.get(input.model);
      if (!backend) {
        throw activityFailure(
          'ModelNotFound',
          `Worker ${deps.workerId} (${input.gpuType}) does not serve model ${input.model}`,
        );
      }
      const started = performance.now();
      const details: InferenceFailureDetails[] = [{ workerId: deps.workerId }];
      const deadline = new RunDeadline(ctx.cancellationSignal, input.deadlineAt);
      if (deadline.passed) {
        // Taken at or after its deadline (a worker's clock a little ahead of the server's): the GPU stays free.
        deadline.clear();
        throw activityFailure('DeadlineExceeded', `${deadline.describe()} before ${deps.workerId} took it`, {
          details,
        });
      }
      const traceStage = stageTracer(input);
      const background = isRelaxLane(ctx.info.taskQueue);
      let beat: InferenceHeartbeat = { step: 0, totalSteps: input.steps, workerId: deps.workerId };
      const keepAlive = setInterval(() => ctx.heartbeat(beat), heartbeatIntervalMs);
      try {
        if (background) await deps.whenIdle?.(deadline.signal);
        await announceStatus(deps.eventLog, 'generating', input.gpuType);
        const progress = new ProgressPublisher(deps.eventLog, currentEventLogId(), progressIntervalMs, ctx.log);
        const generateStarted = performance.now();
        const images = await backend.generate(
          {
            requestId: input.requestId,
            ...generationParams(input),
            ...(input.soloBatch ? { soloBatch: true } : {}),
            ...(ctx.info.priority?.priorityKey ? { priority: ctx.info.priority.priorityKey } : {}),
            ...(background ? { background: true } : {}),
          },
          {
            signal: deadline.signal,
            onProgress: (step, totalSteps) => {
              beat = { step, totalSteps, workerId: deps.workerId };
              progress.offer(step, totalSteps);
            },
            onStage: traceStage,
          },
        );
        const seconds = (performance.now() - generateStarted) / 1000;
        deps.onInferenceTimed?.({ model: input.model, gpuType: input.gpuType, backend: backend.name, seconds });
        deps.onOutcome?.({ model: input.model, requestId: input.requestId, failureType: undefined });
        // Progress events precede what storage publishes next (`uploading`), so clients see them in order.
        await progress.flush();
        const stagingKeys: string[] = [];
        for (const [index, image] of images.entries()) {
          const key = stagingImageKey(input.userId, input.requestId, activityRunId(ctx.info), index);
          await deps.store.put(key, image.png, {
            requestId: input.requestId,
            seed: String(image.seed),
            worker: deps.workerId,
          });
          stagingKeys.push(key);
        }
        const first = images[0];
        return {
          stagingKeys,
          ...(deps.region !== undefined ? { region: deps.region } : {}),
          seeds: images.map((image) => image.seed),
          width: first?.width ?? input.width,
          height: first?.height ?? input.height,
          backend: backend.name,
          workerId: deps.workerId,
          durationMs: Math.round(performance.now() - started),
        };
      } catch (err) {
        // Stopped at the deadline: neither the model nor the worker failed, so their health rules are not told.
        if (deadline.passed) {
          throw activityFailure('DeadlineExceeded', `${deadline.describe()}; ${deps.workerId} stopped the run`, {
            details,
          });
        }
        const failure = toActivityFailure(err, ctx, deps.workerId);
        if (
          failure instanceof ApplicationFailure &&
          failure.type !== 'WorkerShutdown' &&
          isFailureType(failure.type ?? undefined)
        ) {
          deps.onOutcome?.({
            model: input.model,
            requestId: input.requestId,
            failureType: failure.type as FailureType,
          });
        }
        throw failure;
      } finally {
        clearInterval(keepAlive);
        deadline.clear();
      }
    },
  };
}

/**
 * The model -> backend map of a worker: each model goes to the first backend in `backends` that supports it, so
 * a worker lists its backends in order of preference (e.g. ONNX for `tiny-sd`, then the simulated GPU backend).
 */
export function backendsByModel(
  backends: readonly InferenceBackend[],
  models: readonly ModelName[],
): Map<ModelName, InferenceBackend> {
  const map = new Map<ModelName, InferenceBackend>();
  for (const model of models) {
    const backend = backends.find((b) => b.supports(model));
    if (backend) map.set(model, backend);
  }
  return map;
}
