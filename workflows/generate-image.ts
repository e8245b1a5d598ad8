// The `generateImage` workflow: one execution per generation request. It screens the prompt, routes the request
// to a GPU fleet (seed 001's routing matrix), runs inference on that fleet's task queue, stores the images, and
// ends with exactly one terminal event (`completed` or `failed`) in the request's event log. Failed and cancelled
// requests end the workflow as failed / cancelled, so what operators see in Temporal is what the client was told.
//
// The lean pipeline (patch `lean-pipeline-v1`): the activities that do the work publish the statuses the client
// sees, as the work really starts: the safety screen (a local activity on the control worker: no round trip to the
// server) says `safety_check`, the GPU worker that takes the request says `generating`, storage says `uploading`
// and publishes `completed`. The workflow publishes only what no activity can: `pending_safety`, failures and
// cancellation (and `completed`, should storage not have reached Redis). A happy-path request then costs two
// activity round trips and three workflow tasks. Workflows started before the patch finish on the classic path,
// where the workflow published every status itself.
//
// A request with a deadline (`deadlineMs`) is screened and run on a GPU within it (workflows/deadline.ts): past it,
// the work is cancelled, the GPU stopped, and the request ends TIMED_OUT. Requests without one run as before.
//
// Runs in Temporal's deterministic sandbox: activity implementations are imported as types only, and any
// change to the order of activity calls or to routing must be versioned with `patched()` (test/replay guards it).
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  patched,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { imageRefs, type GenerationFailure, type InferenceOutput, type SafetyInput } from '../core/activities';
import type { RequestEvent, StoredImageRef } from '../core/events';
import type { GpuType } from '../core/gpu';
import type { GenerationRequest } from '../core/request';
import { routeToGpu, type RoutingDecision, type RoutingRule } from '../core/routing';
import { GenerationStatusKey, GpuTypeKey } from '../core/search-attributes';
import { STATUS_SEARCH_VALUE, type GenerationStatus } from '../core/status';
import { controlActivities, patientSafetyWithin } from './activity-options';
import { checkDeadline, deadlineExceeded, msUntil, withinDeadline } from './deadline';
import { clientFailure, describeFailure, isRetryableFailure, type Phase } from './failures';
import { runGpuStep } from './gpu-step';

/** Patch id of the lean pipeline; histories without its marker replay on the classic path. */
export const LEAN_PIPELINE_PATCH = 'lean-pipeline-v1';

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
  const run = new GenerationRun(req, patched(LEAN_PIPELINE_PATCH));
  try {
    await run.accept();
    // A deadline covers the wait and the GPU work; images made by then are stored (a moment, and storage may
    // already have told the client) rather than thrown away.
    const { route, inference } = await withinDeadline(
      req.deadlineAt,
      () => `in the ${run.phase} phase`,
      async () => {
        run.phase = 'safety';
        await run.screenPrompt();
        run.phase = 'inference';
        return run.generate();
      },
    );
    run.phase = 'storage';
    const images = await run.store(inference);
    run.phase = 'finish';
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

  /** `lean`: activities publish the statuses of their work (see the top of this file); else the workflow does. */
  constructor(
    private readonly req: GenerationRequest,
    private readonly lean: boolean,
  ) {
    this.activities = controlActivities(req.region);
    this.view = { status: 'queued', totalSteps: req.steps };
    setHandler(statusQuery, () => this.view);
  }

  private publish(event: RequestEvent, dedupeKey: string): Promise<number> {
    return this.activities.notify.publishEvent({ requestId: this.req.requestId, event, dedupeKey });
  }

  /**
   * Keeps the query, the search attribute and the client in step; each status is published once. With
   * `announcedByActivity` (lean pipeline) the activity about to run publishes the status when its work starts.
   */
  private async enterStatus(
    status: GenerationStatus,
    options: { gpuType?: GpuType; announcedByActivity?: boolean; extraAttributes?: SearchAttributeUpdatePair[] } = {},
  ): Promise<void> {
    this.view = { ...this.view, status };
    const { gpuType, announcedByActivity = false, extraAttributes = [] } = options;
    upsertSearchAttributes([...extraAttributes, { key: GenerationStatusKey, value: STATUS_SEARCH_VALUE[status] }]);
    if (announcedByActivity) return;
    await this.publish(gpuType ? { type: 'status', status, gpuType } : { type: 'status', status }, `status:${status}`);
  }

  /** Classic path: `queued` (the gateway publishes it on the lean path, and the start set the search attribute). */
  async accept(): Promise<void> {
    if (!this.lean) await this.enterStatus('queued');
  }

  /** The safety screen; while it is down, the request waits in pending_safety (seed 001, Safety API unavailable). */
  async screenPrompt(): Promise<void> {
    const input = { requestId: this.req.requestId, prompt: this.req.prompt, negativePrompt: this.req.negativePrompt };
    try {
      if (this.lean) {
        // No search attribute update: on the happy path the screen ends within this workflow task.
        this.view = { ...this.view, status: 'safety_check' };
        await this.activities.safetyLocal.checkPromptSafety(input);
      } else {
        await this.enterStatus('safety_check');
        await this.activities.safetyQuick.checkPromptSafety(input);
      }
    } catch (err) {
      if (isCancellation(err) || !isRetryableFailure(err)) throw err;
      checkDeadline(this.req.deadlineAt, 'while the safety screen was down');
      await this.enterStatus('pending_safety');
      await this.patientSafety(input);
    }
  }

  /**
   * The patient safety attempts. A request with a deadline gives them only the time it has left, so their giving up
   * (out of time, or no retry fitting before it) is its deadline passing.
   */
  private async patientSafety(input: SafetyInput): Promise<void> {
    const { deadlineAt, region } = this.req;
    if (deadlineAt === undefined) {
      await this.activities.safetyPatient.checkPromptSafety(input);
      return;
    }
    checkDeadline(deadlineAt, 'while the safety screen was down');
    try {
      await patientSafetyWithin(region, msUntil(deadlineAt)).checkPromptSafety(input);
    } catch (err) {
      if (isCancellation(err) || !isRetryableFailure(err)) throw err;
      throw deadlineExceeded(deadlineAt, 'while the safety screen was down');
    }
  }

  /** Routes the request to a GPU fleet (seed 001's matrix) and runs inference on that fleet's queue. */
  async generate(): Promise<{ route: RoutingDecision; inference: InferenceOutput }> {
    const { req } = this;
    const route = routeToGpu(req);
    const gpuAttribute: SearchAttributeUpdatePair = { key: GpuTypeKey, value: route.gpuType };
    if (this.lean) {
      this.view = { ...this.view, gpuType: route.gpuType };
      await this.enterStatus('generating', { announcedByActivity: true, extraAttributes: [gpuAttribute] });
    } else {
      upsertSearchAttributes([gpuAttribute]);
      this.view = { ...this.view, gpuType: route.gpuType };
      await this.enterStatus('generating', { gpuType: route.gpuType });
    }
    const { gpuType, inference } = await runGpuStep(req, route, {
      fleet: (next) => {
        this.view = { ...this.view, gpuType: next };
      },
      // Moved to another region (its own died): its client is told where it waits now, as for a new request.
      region: async (region) => {
        await this.publish({ type: 'status', status: 'queued', region, degraded: true }, `status:queued:${region}`);
      },
    });
    this.view = { ...this.view, step: req.steps };
    return { route: { ...route, gpuType }, inference };
  }

  /** Moves the staged images to their final keys and tells the client they are ready. */
  async store(inference: InferenceOutput): Promise<StoredImageRef[]> {
    const { req } = this;
    if (this.lean) {
      // No search attribute update: storage takes a moment, and the next one (Completed) follows right after it.
      this.view = { ...this.view, status: 'uploading' };
    } else {
      await this.enterStatus('uploading');
    }
    const input = {
      requestId: req.requestId,
      userId: req.userId,
      model: req.model,
      prompt: req.prompt,
      stagingKeys: inference.stagingKeys,
      ...(inference.region !== undefined ? { stagedRegion: inference.region } : {}),
      seeds: inference.seeds,
      width: inference.width,
      height: inference.height,
    };
    // Lean: storage publishes `completed` itself, so once it runs a cancel must not end the request as cancelled
    // (the client may already have its images): the step runs to its end whatever arrives meanwhile.
    const stored = this.lean
      ? await CancellationScope.nonCancellable(() => this.activities.storage.storeImages(input))
      : await this.activities.storage.storeImages(input);
    const images = imageRefs(stored);
    if (this.lean && stored.terminalPublished === true) {
      upsertSearchAttributes([{ key: GenerationStatusKey, value: STATUS_SEARCH_VALUE.completed }]);
    } else {
      // The images exist now: a cancel that races with this last step no longer takes them away from the client.
      await this.finish('completed', { type: 'completed', images });
    }
    return images;
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
    // The run id names this failure for operators; internals stay in Temporal (the workflow failure, the query).
    const correlationId = workflowInfo().runId;
    if (isCancellation(err)) {
      const failure: GenerationFailure = { code: 'CANCELLED', message: 'The request was cancelled', retryable: false };
      await this.finish('cancelled', { type: 'failed', ...failure, correlationId });
      this.view = { ...this.view, status: 'cancelled', failure };
      return err;
    }
    const failure = describeFailure(err, this.phase);
    await this.finish('failed', { type: 'failed', ...clientFailure(failure), correlationId });
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
