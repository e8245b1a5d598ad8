// The `generateImage` workflow: one execution per generation request. It screens the prompt, routes the request
// to a GPU fleet (seed 001's routing matrix), runs inference on that fleet's task queue, stores the images, and
// tells the client what is happening through the request's event log, ending with exactly one terminal event
// (`completed` or `failed`). Failed and cancelled requests end the workflow as failed / cancelled, so what
// operators see in Temporal is what the client was told.
//
// Runs in Temporal's deterministic sandbox: activity implementations are imported as types only, and any
// change to the order of activity calls or to routing must be versioned with `patched()` (test/replay guards it).
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { GenerationFailure, InferenceOutput } from '../core/activities';
import type { RequestEvent, StoredImageRef } from '../core/events';
import type { GpuType } from '../core/gpu';
import { generationParams } from '../core/generation-params';
import type { GenerationRequest } from '../core/request';
import { routeToGpu, type RoutingRule } from '../core/routing';
import { GenerationStatusKey, GpuTypeKey } from '../core/search-attributes';
import { STATUS_SEARCH_VALUE, type GenerationStatus } from '../core/status';
import { controlActivities, fleetActivities } from './activity-options';
import { describeFailure, isRetryableFailure, type Phase } from './failures';

/** What `generateImage` returns; a request that does not complete fails the workflow instead. */
export interface GenerationResult {
  readonly requestId: string;
  readonly images: readonly StoredImageRef[];
  readonly gpuType: GpuType;
  readonly routingRule: RoutingRule;
  /** Which backend produced the images (`simulated`, `onnx:cpu`...) and on which worker. */
  readonly backend: string;
  readonly workerId: string;
  /** Time spent in the inference backend on the successful attempt, ms. */
  readonly inferenceMs: number;
}

/**
 * What `statusQuery` answers. `step` is the last step known to the workflow: live per-step progress goes to
 * clients through the event log, not through workflow history, so it is only set once inference has finished.
 */
export interface GenerationView {
  readonly status: GenerationStatus;
  readonly gpuType?: GpuType;
  readonly step?: number;
  readonly totalSteps?: number;
  readonly images?: readonly StoredImageRef[];
  readonly failure?: GenerationFailure;
}

export const statusQuery = defineQuery<GenerationView>('status');

export async function generateImage(req: GenerationRequest): Promise<GenerationResult> {
  const run = new GenerationRun(req);
  try {
    await run.enterStatus('queued');
    run.phase = 'safety';
    await run.screenPrompt();
    run.phase = 'inference';
    const { route, inference } = await run.generate();
    run.phase = 'storage';
    const images = await run.store(inference);
    run.phase = 'finish';
    // The images exist now: a cancel that races with this last step no longer takes them away from the client.
    await run.finish('completed', { type: 'completed', images });
    run.view = { ...run.view, status: 'completed', images };
    return {
      requestId: req.requestId,
      images,
      gpuType: route.gpuType,
      routingRule: route.rule,
      backend: inference.backend,
      workerId: inference.workerId,
      inferenceMs: inference.durationMs,
    };
  } catch (err) {
    throw await run.fail(err);
  }
}

/**
 * One request's run: its activities, what the status query shows, and the phase a failure would come from. Each
 * step keeps the query, the search attributes and the client's event log in step, in the order replay expects.
 */
class GenerationRun {
  private readonly activities: ReturnType<typeof controlActivities>;
  view: GenerationView;
  phase: Phase = 'accept';

  constructor(private readonly req: GenerationRequest) {
    this.activities = controlActivities(req.region);
    this.view = { status: 'queued', totalSteps: req.steps };
    setHandler(statusQuery, () => this.view);
  }

  private publish(event: RequestEvent, dedupeKey: string): Promise<number> {
    return this.activities.notify.publishEvent({ requestId: this.req.requestId, event, dedupeKey });
  }

  /** Keeps the query, the search attribute and the client in step; each status is published once. */
  async enterStatus(status: GenerationStatus, gpuType?: GpuType): Promise<void> {
    this.view = { ...this.view, status };
    upsertSearchAttributes([{ key: GenerationStatusKey, value: STATUS_SEARCH_VALUE[status] }]);
    await this.publish(gpuType ? { type: 'status', status, gpuType } : { type: 'status', status }, `status:${status}`);
  }

  /** The safety screen; while it is down, the request waits in pending_safety (seed 001, Safety API unavailable). */
  async screenPrompt(): Promise<void> {
    await this.enterStatus('safety_check');
    const input = { requestId: this.req.requestId, prompt: this.req.prompt, negativePrompt: this.req.negativePrompt };
    try {
      await this.activities.safetyQuick.checkPromptSafety(input);
    } catch (err) {
      if (isCancellation(err) || !isRetryableFailure(err)) throw err;
      await this.enterStatus('pending_safety');
      await this.activities.safetyPatient.checkPromptSafety(input);
    }
  }

  /** Routes the request to a GPU fleet (seed 001's matrix) and runs inference on that fleet's queue. */
  async generate(): Promise<{ route: ReturnType<typeof routeToGpu>; inference: InferenceOutput }> {
    const { req } = this;
    const route = routeToGpu(req);
    upsertSearchAttributes([{ key: GpuTypeKey, value: route.gpuType }]);
    this.view = { ...this.view, gpuType: route.gpuType };
    await this.enterStatus('generating', route.gpuType);
    const inference = await fleetActivities(req.region, route.gpuType).runInference({
      requestId: req.requestId,
      userId: req.userId,
      ...generationParams(req),
      gpuType: route.gpuType,
    });
    this.view = { ...this.view, step: req.steps };
    return { route, inference };
  }

  /** Moves the staged images to their final keys. */
  async store(inference: InferenceOutput): Promise<StoredImageRef[]> {
    const { req } = this;
    await this.enterStatus('uploading');
    const stored = await this.activities.storage.storeImages({
      requestId: req.requestId,
      userId: req.userId,
      model: req.model,
      prompt: req.prompt,
      stagingKeys: inference.stagingKeys,
      seeds: inference.seeds,
      width: inference.width,
      height: inference.height,
    });
    return stored.images.map(({ key, width, height, seed }) => ({ key, width, height, seed }));
  }

  /** Publishes the terminal event (once, whatever happens) and records the final status. */
  finish(status: 'completed' | 'failed' | 'cancelled', event: RequestEvent): Promise<void> {
    // Non-cancellable: a cancel arriving now must not leave the client without its terminal event.
    return CancellationScope.nonCancellable(async () => {
      await this.publish(event, 'terminal');
      upsertSearchAttributes([{ key: GenerationStatusKey, value: STATUS_SEARCH_VALUE[status] }]);
    });
  }

  /**
   * Tells the client how the request ended and returns what the workflow fails with: the cancellation itself, so
   * Temporal shows the run as cancelled, or a non-retryable failure carrying the client's code.
   */
  async fail(err: unknown): Promise<unknown> {
    if (isCancellation(err)) {
      const failure: GenerationFailure = { code: 'CANCELLED', message: 'The request was cancelled', retryable: false };
      await this.finish('cancelled', { type: 'failed', ...failure });
      this.view = { ...this.view, status: 'cancelled', failure };
      return err;
    }
    const failure = describeFailure(err, this.phase);
    await this.finish('failed', { type: 'failed', ...failure });
    this.view = { ...this.view, status: 'failed', failure };
    return ApplicationFailure.create({
      type: failure.code,
      message: `${failure.code}: ${failure.message}`,
      nonRetryable: true,
      details: [failure],
      cause: err instanceof Error ? err : undefined,
    });
  }
}
