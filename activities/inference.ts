// The `runInference` activity that GPU workers run: picks the backend that serves the requested model, runs it
// with per-step heartbeats (so a dead worker is noticed within the heartbeat timeout and the request retried
// elsewhere) and cancellation (a cancelled request frees the GPU within one step), publishes throttled progress
// events, and stages the PNGs in the object store. Only object keys go back to the workflow, never image bytes.
import { Context } from '@temporalio/activity';
import type { InferenceActivities, InferenceInput, InferenceOutput } from '../core/activities';
import { generationParams } from '../core/generation-params';
import type { ModelName } from '../core/models';
import type { RedisEventLog } from '../runtime/event-log';
import type { ObjectStore } from '../runtime/object-store';
import { activityFailure } from './failures';
import { currentEventLogId } from './notification';
import { stagingImageKey } from './object-keys';
import { InferenceError, type InferenceBackend } from '../inference/backend';

export interface InferenceActivityDeps {
  /** The backend serving each model on this worker; a model not in the map is not served here (ModelNotFound). */
  readonly backends: ReadonlyMap<ModelName, InferenceBackend>;
  readonly store: ObjectStore;
  readonly eventLog: RedisEventLog;
  /** Names this worker in results and logs, e.g. `host:pid:a10g`. */
  readonly workerId: string;
  /** Least time between two progress events of one request (at most ~10 per second), milliseconds. @default 100 */
  readonly progressIntervalMs?: number;
  /**
   * Heartbeat at least this often even when no step completes (long steps, model loading), milliseconds. Well
   * under the workflow's 30 s heartbeat timeout; seed 001 asks for 10 s, we keep a margin. @default 3000
   */
  readonly heartbeatIntervalMs?: number;
}

/** What `runInference` heartbeats: the last finished step, so operators see progress in the Web UI. */
export interface InferenceHeartbeat {
  readonly step: number;
  readonly totalSteps: number;
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
    private readonly eventLog: RedisEventLog,
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

/** Backend failures become ApplicationFailures whose type the workflow maps to a client code (core/errors.ts). */
function toActivityFailure(err: unknown): unknown {
  if (!(err instanceof InferenceError)) return err;
  return activityFailure(err.failureType, err.message, { cause: err });
}

export function createInferenceActivities(deps: InferenceActivityDeps): InferenceActivities {
  const progressIntervalMs = deps.progressIntervalMs ?? 100;
  const heartbeatIntervalMs = deps.heartbeatIntervalMs ?? 3000;

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
      const progress = new ProgressPublisher(deps.eventLog, currentEventLogId(), progressIntervalMs, ctx.log);
      let beat: InferenceHeartbeat = { step: 0, totalSteps: input.steps };
      ctx.heartbeat(beat);
      const keepAlive = setInterval(() => ctx.heartbeat(beat), heartbeatIntervalMs);
      try {
        const images = await backend.generate(
          { requestId: input.requestId, ...generationParams(input) },
          {
            signal: ctx.cancellationSignal,
            onProgress: (step, totalSteps) => {
              beat = { step, totalSteps };
              ctx.heartbeat(beat);
              progress.offer(step, totalSteps);
            },
          },
        );
        // Progress events precede whatever the workflow publishes next (`uploading`), so clients see them in order.
        await progress.flush();
        const stagingKeys: string[] = [];
        for (const [index, image] of images.entries()) {
          const key = stagingImageKey(input.userId, input.requestId, index);
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
          seeds: images.map((image) => image.seed),
          width: first?.width ?? input.width,
          height: first?.height ?? input.height,
          backend: backend.name,
          workerId: deps.workerId,
          durationMs: Math.round(performance.now() - started),
        };
      } catch (err) {
        // An AbortError after cancellation is passed through untouched: the SDK reports it as cancelled.
        throw toActivityFailure(err);
      } finally {
        clearInterval(keepAlive);
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
