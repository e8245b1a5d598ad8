// Activity options of the generateImage workflow, one set per kind of work: timeouts and retry policies from seed
// 001 (worker health, request recovery, Safety API unavailable), and the proxies built from them.
import { TIER_QUEUE_WAIT_BOUND_MS } from '../core/capacity';
import type { Duration } from '@temporalio/common';
import {
  ActivityCancellationType,
  proxyActivities,
  proxyLocalActivities,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { createControlActivities, createInferenceActivities } from '../activities';
import { FAILURE_TYPES, type FailureType } from '../core/errors';
import type { Fairness } from '../core/fairness';
import { controlTaskQueue, gpuTaskQueueForTier, type GpuType } from '../core/gpu';
import type { Tier } from '../core/tiers';

/** Failure types that no retry can fix; listed in retry policies too so that a mislabelled failure still stops. */
const NON_RETRYABLE_TYPES = (Object.keys(FAILURE_TYPES) as FailureType[]).filter(
  (type) => !FAILURE_TYPES[type].retryable,
);

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
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '2s',
    maximumAttempts: 3,
    nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
  },
};

/**
 * The lean pipeline's first safety attempts: a local activity, run by the control worker inside the workflow task
 * (no activity round trip through the server), with the same short bound before the request parks in
 * pending_safety, where the patient attempts are ordinary activities (a 24 h wait is no job for a local one).
 */
const SAFETY_LOCAL_OPTIONS: LocalActivityOptions = {
  startToCloseTimeout: '10s',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '2s',
    maximumAttempts: 3,
    nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
  },
};

/** Seed 001 "Safety API unavailable": queue the request in pending_safety and retry until the screen recovers. */
const SAFETY_PATIENT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '24h',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '5m',
    nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
  },
};

/**
 * Seed 001 worker health: the GPU worker heartbeats every second while it runs a request (seed 001 asks for at most
 * 10 s apart), and a worker silent for 30 s is presumed dead. Each attempt is a single try: the workflow retries a
 * failed one itself, by failure type (workflows/gpu-step.ts, core/recovery.ts: MAX_RETRIES 3, backoff min(30, 2^n) s).
 * startToClose only backstops a hung worker that still heartbeats: the largest request (Flux, 4K, 8 images on an
 * A100) models at about 75 minutes.
 */
const INFERENCE_MAX_RUN_MS = 2 * 60 * 60 * 1000;
const INFERENCE_OPTIONS: ActivityOptions = {
  startToCloseTimeout: INFERENCE_MAX_RUN_MS,
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 1 },
  // A cancelled request ends only once the GPU has stopped: "cancelled" then also means "no longer billed".
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

const STORAGE_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '60s',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 10,
    nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
  },
};

/** The control-queue activities of a region, each kind with its own options. */
export function controlActivities(region: string) {
  const taskQueue = controlTaskQueue(region);
  return {
    notify: proxyActivities<ControlActivities>({ ...NOTIFY_OPTIONS, taskQueue }),
    safetyQuick: proxyActivities<ControlActivities>({ ...SAFETY_QUICK_OPTIONS, taskQueue }),
    safetyLocal: proxyLocalActivities<ControlActivities>(SAFETY_LOCAL_OPTIONS),
    safetyPatient: proxyActivities<ControlActivities>({ ...SAFETY_PATIENT_OPTIONS, taskQueue }),
    storage: proxyActivities<ControlActivities>({ ...STORAGE_OPTIONS, taskQueue }),
  };
}

/**
 * The patient safety attempts of a request with a deadline: they end by it (schedule-to-close, enforced by the
 * server), not 24 h later. `msLeft` is the time left to the deadline.
 */
export function patientSafetyWithin(region: string, msLeft: number) {
  const scheduleToCloseTimeout = Math.min(msLeft, 24 * 60 * 60 * 1000);
  return proxyActivities<ControlActivities>({
    ...SAFETY_PATIENT_OPTIONS,
    scheduleToCloseTimeout,
    taskQueue: controlTaskQueue(region),
  });
}

/**
 * How long each GPU attempt may wait in its fleet's queue, ms, before the request moves to the next fleet the routing
 * matrix allows (GenerationRun.runOnSomeFleet). Long enough for seed 001's autoscaler to act on a backlog (a 30-120 s
 * trigger, a 120 s cooldown, then a worker's start), short enough that a fleet with no live worker does not hold a
 * request for ever: a turbo request with no H100 anywhere ends NO_CAPACITY after its three fleets, about 3 minutes.
 * Relax requests accept long queues by design (seed 001: relax waits are fine up to 5 minutes), so theirs is longest.
 */
export const GPU_SCHEDULE_TO_START: Readonly<Record<Tier, number>> = TIER_QUEUE_WAIT_BOUND_MS;

/** How one GPU attempt is scheduled beyond its fleet: its wait bound, and for a retry its number and priority. */
export interface GpuAttemptOptions {
  readonly scheduleToStartTimeout?: Duration;
  /** How long the attempt may run once started, ms, at most the 2 h default: a request's deadline cuts it. */
  readonly startToCloseTimeout?: number;
  /** Retries before this attempt; 0 for the first. */
  readonly retry?: number;
  /** Temporal priority of a retry (core/recovery.ts); the first attempt inherits the workflow's. */
  readonly priorityKey?: number;
  /**
   * The request's user and weight (core/fairness.ts), the order within a priority. Temporal merges an activity's
   * priority with its workflow's field by field, so the tier's key still comes from the workflow.
   */
  readonly fairness?: Fairness;
}

/**
 * The inference activity on one GPU fleet's task queue of a region: relax requests on the fleet's relax lane, which
 * its workers take only on idle capacity (seed 004), turbo and fast on the fleet's own queue.
 */
export function fleetActivities(region: string, gpuType: GpuType, tier: Tier, attempt: GpuAttemptOptions = {}) {
  const { scheduleToStartTimeout, startToCloseTimeout, retry = 0, priorityKey, fairness } = attempt;
  const priority = { ...(priorityKey === undefined ? {} : { priorityKey }), ...fairness };
  return proxyActivities<InferenceActivities>({
    ...INFERENCE_OPTIONS,
    ...(scheduleToStartTimeout === undefined ? {} : { scheduleToStartTimeout }),
    // Replay compares neither timeout, so cutting them to a deadline needs no patch.
    ...(startToCloseTimeout === undefined
      ? {}
      : { startToCloseTimeout: Math.min(startToCloseTimeout, INFERENCE_MAX_RUN_MS) }),
    // Replay needs no patch for this: it compares a scheduled activity's id and type with the command, never its
    // priority, so histories recorded without fairness keys replay unchanged (test/replay).
    ...(Object.keys(priority).length === 0 ? {} : { priority }),
    // Replay compares activity ids, not task queues (moving relax to its lane needed no patch): naming the fleet in
    // the id makes a routing change that would move an in-flight request to another fleet fail replay, instead of
    // passing unnoticed. A retry the workflow schedules itself is numbered.
    taskQueue: gpuTaskQueueForTier(region, gpuType, tier),
    activityId: retry === 0 ? `runInference:${gpuType}` : `runInference:${gpuType}:retry${retry}`,
  });
}
