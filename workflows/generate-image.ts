// The `generateImage` workflow: one execution per generation request. It screens the prompt, routes the request
// to a GPU fleet (seed 001's routing matrix), runs inference on that fleet's task queue, stores the images, and
// tells the client what is happening through the request's event log, ending with exactly one terminal event
// (`completed` or `failed`). Failed and cancelled requests end the workflow as failed / cancelled, so what
// operators see in Temporal is what the client was told.
//
// Runs in Temporal's deterministic sandbox: activity implementations are imported as types only, and any
// change to the order of activity calls or to routing must be versioned with `patched()` (test/replay guards it).
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  defineQuery,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { createControlActivities, createInferenceActivities } from '../activities';
import type { GenerationFailure, InferenceOutput } from '../core/activities';
import { FAILURE_TYPES, isFailureType, type FailureCode, type FailureType } from '../core/errors';
import type { RequestEvent, StoredImageRef } from '../core/events';
import { controlTaskQueue, gpuTaskQueue, type GpuType } from '../core/gpu';
import { generationParams } from '../core/generation-params';
import type { GenerationRequest } from '../core/request';
import { routeToGpu, type RoutingRule } from '../core/routing';
import { GenerationStatusKey, GpuTypeKey } from '../core/search-attributes';
import { STATUS_SEARCH_VALUE, type GenerationStatus } from '../core/status';

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

/** Failure types that no retry can fix; listed in retry policies too so that a mislabelled failure still stops. */
const NON_RETRYABLE_TYPES = (Object.keys(FAILURE_TYPES) as FailureType[]).filter((type) => !FAILURE_TYPES[type].retryable);

/**
 * Whether resubmitting the same request could succeed, as told to the client in the `failed` event. This is
 * about the request, not about activity attempts: inference that failed after all retries may well work later.
 */
const CLIENT_MAY_RETRY: Readonly<Record<FailureCode, boolean>> = {
  UNSAFE_PROMPT: false,
  CANCELLED: false,
  MODEL_UNAVAILABLE: true,
  INFERENCE_FAILED: true,
  STORAGE_FAILED: true,
  TIMED_OUT: true,
  INTERNAL: false,
};

type ControlActivities = ReturnType<typeof createControlActivities>;
type InferenceActivities = ReturnType<typeof createInferenceActivities>;

/** Redis writes: quick, retried until Redis is back, because events are how the client hears about its request. */
const NOTIFY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '24h',
  retry: { initialInterval: '250ms', backoffCoefficient: 2, maximumInterval: '5s' },
};

/** First safety attempts: a short bound (about 3 s of retries) before the request is shown as pending_safety. */
const SAFETY_QUICK_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2s', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
};

/** Seed 001 "Safety API unavailable": queue the request in pending_safety and retry until the screen recovers. */
const SAFETY_PATIENT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '24h',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '5m', nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
};

/**
 * Seed 001 worker health and request recovery: heartbeats every step (at most 10 s apart), a worker silent for
 * 30 s is presumed dead and the request retried on another; MAX_RETRIES = 3 with backoff min(30, 2^n) s.
 * startToClose only backstops a hung worker that still heartbeats: the largest request (Flux, 4K, 8 images on an
 * A100) models at about 75 minutes.
 */
const INFERENCE_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '2h',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 4, nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
  // A cancelled request ends only once the GPU has stopped: "cancelled" then also means "no longer billed".
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

const STORAGE_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '60s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
};

/** The part of the pipeline a failure came from; decides the client code when the failure has no known type. */
type Phase = 'accept' | 'safety' | 'inference' | 'storage' | 'finish';

const PHASE_FAILURE_CODE: Readonly<Record<Phase, FailureCode>> = {
  accept: 'INTERNAL',
  // Only the 24-hour pending_safety deadline ends the safety phase with a retryable failure.
  safety: 'TIMED_OUT',
  inference: 'INFERENCE_FAILED',
  storage: 'STORAGE_FAILED',
  finish: 'INTERNAL',
};

export async function generateImage(req: GenerationRequest): Promise<GenerationResult> {
  const controlQueue = controlTaskQueue(req.region);
  const notify = proxyActivities<ControlActivities>({ ...NOTIFY_OPTIONS, taskQueue: controlQueue });
  const safetyQuick = proxyActivities<ControlActivities>({ ...SAFETY_QUICK_OPTIONS, taskQueue: controlQueue });
  const safetyPatient = proxyActivities<ControlActivities>({ ...SAFETY_PATIENT_OPTIONS, taskQueue: controlQueue });
  const storage = proxyActivities<ControlActivities>({ ...STORAGE_OPTIONS, taskQueue: controlQueue });

  let view: GenerationView = { status: 'queued', totalSteps: req.steps };
  setHandler(statusQuery, () => view);
  let phase: Phase = 'accept';

  const publish = (event: RequestEvent, dedupeKey: string): Promise<number> =>
    notify.publishEvent({ requestId: req.requestId, event, dedupeKey });

  /** Keeps the query, the search attribute and the client in step; each status is published once. */
  const enterStatus = async (status: GenerationStatus, gpuType?: GpuType): Promise<void> => {
    view = { ...view, status };
    upsertSearchAttributes([{ key: GenerationStatusKey, value: STATUS_SEARCH_VALUE[status] }]);
    await publish(gpuType ? { type: 'status', status, gpuType } : { type: 'status', status }, `status:${status}`);
  };

  /** Publishes the terminal event (once, whatever happens) and records the final status. */
  const finish = (status: 'completed' | 'failed' | 'cancelled', event: RequestEvent): Promise<void> =>
    // Non-cancellable: a cancel arriving now must not leave the client without its terminal event.
    CancellationScope.nonCancellable(async () => {
      await publish(event, 'terminal');
      upsertSearchAttributes([{ key: GenerationStatusKey, value: STATUS_SEARCH_VALUE[status] }]);
    });

  try {
    await enterStatus('queued');

    phase = 'safety';
    await enterStatus('safety_check');
    const safetyInput = { requestId: req.requestId, prompt: req.prompt, negativePrompt: req.negativePrompt };
    try {
      await safetyQuick.checkPromptSafety(safetyInput);
    } catch (err) {
      if (isCancellation(err) || !isRetryableFailure(err)) throw err;
      await enterStatus('pending_safety');
      await safetyPatient.checkPromptSafety(safetyInput);
    }

    phase = 'inference';
    const route = routeToGpu(req);
    upsertSearchAttributes([{ key: GpuTypeKey, value: route.gpuType }]);
    view = { ...view, gpuType: route.gpuType };
    await enterStatus('generating', route.gpuType);
    const gpu = proxyActivities<InferenceActivities>({
      ...INFERENCE_OPTIONS,
      taskQueue: gpuTaskQueue(req.region, route.gpuType),
      // Replay compares activity ids, not task queues: naming the fleet in the id makes a routing change that
      // would move an in-flight request to another fleet fail replay, instead of passing unnoticed.
      activityId: `runInference:${route.gpuType}`,
    });
    const inference: InferenceOutput = await gpu.runInference({
      requestId: req.requestId,
      userId: req.userId,
      ...generationParams(req),
      gpuType: route.gpuType,
    });
    view = { ...view, step: req.steps };

    phase = 'storage';
    await enterStatus('uploading');
    const stored = await storage.storeImages({
      requestId: req.requestId,
      userId: req.userId,
      model: req.model,
      prompt: req.prompt,
      stagingKeys: inference.stagingKeys,
      seeds: inference.seeds,
      width: inference.width,
      height: inference.height,
    });
    const images: StoredImageRef[] = stored.images.map(({ key, width, height, seed }) => ({ key, width, height, seed }));

    phase = 'finish';
    // The images exist now: a cancel that races with this last step no longer takes them away from the client.
    await finish('completed', { type: 'completed', images });
    view = { ...view, status: 'completed', images };
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
    if (isCancellation(err)) {
      const failure: GenerationFailure = { code: 'CANCELLED', message: 'The request was cancelled', retryable: false };
      await finish('cancelled', { type: 'failed', ...failure });
      view = { ...view, status: 'cancelled', failure };
      throw err;
    }
    const failure = describeFailure(err, phase);
    await finish('failed', { type: 'failed', ...failure });
    view = { ...view, status: 'failed', failure };
    throw ApplicationFailure.create({
      type: failure.code,
      message: `${failure.code}: ${failure.message}`,
      nonRetryable: true,
      details: [failure],
      cause: err instanceof Error ? err : undefined,
    });
  }
}

/** Walks an error's cause chain (ActivityFailure -> ApplicationFailure -> ...) */
function* causes(err: unknown): Generator<unknown> {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 10; depth++) {
    yield e;
    e = e instanceof Error ? e.cause : undefined;
  }
}

/** A failure that more attempts could fix: not cancelled, not marked non-retryable, not of a non-retryable type. */
function isRetryableFailure(err: unknown): boolean {
  for (const e of causes(err)) {
    if (e instanceof ApplicationFailure) {
      return !e.nonRetryable && !(isFailureType(e.type ?? undefined) && !FAILURE_TYPES[e.type as FailureType].retryable);
    }
  }
  return true;
}

/**
 * The client-facing code and message of a failure: the code from the first ApplicationFailure of a known type in
 * the cause chain, else the phase's code; the message from the innermost error ("Activity task failed" says
 * nothing), noting a timeout when one ended the attempts.
 */
function describeFailure(err: unknown, phase: Phase): GenerationFailure {
  let code: FailureCode | undefined;
  let message = 'Unknown failure';
  let timeout: string | undefined;
  for (const e of causes(err)) {
    if (code === undefined && e instanceof ApplicationFailure && isFailureType(e.type ?? undefined)) {
      code = FAILURE_TYPES[e.type as FailureType].code;
    }
    if (e instanceof TimeoutFailure) timeout ??= (e.timeoutType ?? 'activity').toLowerCase().replace(/_/g, '-');
    if (e instanceof Error && e.message) message = e.message;
  }
  if (timeout && !message.includes('timeout')) message = `${message} (${timeout} timeout)`;
  const finalCode = code ?? PHASE_FAILURE_CODE[phase];
  return { code: finalCode, message, retryable: CLIENT_MAY_RETRY[finalCode] };
}
