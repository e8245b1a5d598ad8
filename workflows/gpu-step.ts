// The GPU step of the generateImage workflow: which fleet runs the request's inference, for how long it may wait
// there, and what happens after a failed attempt. Workflow code (deterministic; runs in the sandbox).
//
// - Capacity: each fleet the routing matrix allows, in its order, gets the step for a bounded wait in its queue
//   (schedule-to-start, GPU_SCHEDULE_TO_START by tier); a fleet where no worker started it passes the request on,
//   and when none did the request ends NO_CAPACITY (retryable) instead of waiting for a worker that may never come.
//   This needs no patch: replay compares activity ids and types, not timeouts, and the next-fleet path follows only
//   a schedule-to-start timeout, which no history recorded before the bound existed can hold.
// - Recovery (patch `gpu-recovery-v1`): the workflow retries a failed attempt itself, by seed 001's rules
//   (core/recovery.ts): backoff, a priority boost per retry, out-of-memory alone on a larger-VRAM fleet. Histories
//   recorded before the patch let the activity's retry policy retry, and failed the request when it gave up.
// - Fairness: every attempt carries the request's user as its Temporal fairness key, weighted by the user's plan
//   (core/fairness.ts), so within a tier each user with queued work gets their share of the fleet instead of waiting
//   behind another user's backlog. No patch: replay compares activity ids and types, not priorities.
// - Quarantine (patch `poison-quarantine-v1`): a request that failed on POISON_DISTINCT_WORKERS different workers
//   ends as a non-retryable Quarantined failure (client code INFERENCE_FAILED, retryable false) and is marked with the
//   Quarantined search attribute, instead of using up its retries on more workers. The worker comes from the
//   failure's details, or, for a worker that went silent, from its last heartbeat.
import {
  ApplicationFailure,
  TimeoutFailure,
  isCancellation,
  log,
  patched,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { InferenceOutput } from '../core/activities';
import { isFailureType, type FailureType } from '../core/errors';
import { requestFairness } from '../core/fairness';
import type { GpuType } from '../core/gpu';
import { generationParams } from '../core/generation-params';
import { planRecovery, POISON_DISTINCT_WORKERS, POISON_FAILURE_TYPES } from '../core/recovery';
import type { GenerationRequest } from '../core/request';
import type { RoutingDecision } from '../core/routing';
import { GpuTypeKey, QuarantinedKey } from '../core/search-attributes';
import { fleetActivities, GPU_SCHEDULE_TO_START } from './activity-options';
import { causes, isScheduleToStartTimeout } from './failures';

/** Patch id of the workflow-driven recovery of the GPU step. */
export const GPU_RECOVERY_PATCH = 'gpu-recovery-v1';
/** Patch id of the poison-request quarantine. */
export const POISON_QUARANTINE_PATCH = 'poison-quarantine-v1';
/** The workflow's newest patch: where record-histories.ts writes. */
export const NEWEST_PATCH = POISON_QUARANTINE_PATCH;

/** The ApplicationFailure type of a failed attempt, when it is one Atelier knows. */
function failureTypeOf(err: unknown): FailureType | undefined {
  for (const e of causes(err)) {
    if (e instanceof ApplicationFailure)
      return isFailureType(e.type ?? undefined) ? (e.type as FailureType) : undefined;
  }
  return undefined;
}

/**
 * The worker a failed attempt says something about the request on: the worker named in a failure of a poison type,
 * or the one whose heartbeats stopped while it ran the request. Undefined for other failures.
 */
function poisonWorkerOf(err: unknown): string | undefined {
  for (const e of causes(err)) {
    if (e instanceof ApplicationFailure) {
      if (!isFailureType(e.type ?? undefined) || !POISON_FAILURE_TYPES.has(e.type as FailureType)) return undefined;
      return workerIdIn(e.details?.[0]);
    }
    if (e instanceof TimeoutFailure && e.timeoutType === 'HEARTBEAT') return workerIdIn(e.lastHeartbeatDetails);
  }
  return undefined;
}

function workerIdIn(details: unknown): string | undefined {
  const id = (details as { workerId?: unknown } | undefined)?.workerId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function describeBound(bound: string | number): string {
  return typeof bound === 'number' ? `${bound} ms` : bound;
}

/**
 * Runs the request's inference on some fleet the routing matrix allows. `onFleet` is told whenever the request
 * moves to another fleet than the one it was on.
 */
/** Ends the request as Quarantined once it has failed on enough different workers. */
function quarantineIfPoison(req: GenerationRequest, err: unknown, failedOn: Set<string>): void {
  const worker = poisonWorkerOf(err);
  if (worker === undefined || !patched(POISON_QUARANTINE_PATCH)) return;
  failedOn.add(worker);
  if (failedOn.size < POISON_DISTINCT_WORKERS) return;
  const workers = [...failedOn];
  log.error('Poison request quarantined', { requestId: req.requestId, workers });
  upsertSearchAttributes([{ key: QuarantinedKey, value: true }]);
  throw ApplicationFailure.create({
    type: 'Quarantined',
    message: `Quarantined: the request failed on ${workers.length} different workers (${workers.join(', ')})`,
    nonRetryable: true,
    details: [{ quarantined: true, workers }],
    cause: err instanceof Error ? err : undefined,
  });
}

export async function runGpuStep(
  req: GenerationRequest,
  route: RoutingDecision,
  onFleet: (gpuType: GpuType) => void,
): Promise<{ gpuType: GpuType; inference: InferenceOutput }> {
  const fleets = [route.gpuType, ...route.alternatives];
  const bound = req.gpuStartTimeoutMs ?? GPU_SCHEDULE_TO_START[req.tier];
  const unstarted: GpuType[] = [];
  let gpuType = route.gpuType;
  let retries = 0;
  let soloBatch = false;
  let priorityKey: number | undefined;
  const fairness = requestFairness(req);
  const failedOn = new Set<string>();
  const moveTo = (next: GpuType): void => {
    gpuType = next;
    upsertSearchAttributes([{ key: GpuTypeKey, value: next }]);
    onFleet(next);
  };
  for (;;) {
    try {
      const activities = fleetActivities(req.region, gpuType, {
        scheduleToStartTimeout: bound,
        retry: retries,
        priorityKey,
        fairness,
      });
      const input = {
        requestId: req.requestId,
        userId: req.userId,
        ...generationParams(req),
        gpuType,
        ...(soloBatch ? { soloBatch } : {}),
      };
      return { gpuType, inference: await activities.runInference(input) };
    } catch (err) {
      if (isScheduleToStartTimeout(err)) {
        unstarted.push(gpuType);
        log.warn('No worker of the fleet started the GPU step in time', { requestId: req.requestId, gpuType, bound });
        const next = fleets.find((fleet) => !unstarted.includes(fleet));
        if (next === undefined) {
          throw ApplicationFailure.create({
            type: 'NoCapacity',
            message: `No worker of ${unstarted.join(', ')} started the request within ${describeBound(bound)} each`,
            nonRetryable: true,
          });
        }
        moveTo(next);
        continue;
      }
      if (isCancellation(err) || !patched(GPU_RECOVERY_PATCH)) throw err;
      quarantineIfPoison(req, err, failedOn);
      const plan = planRecovery({
        tier: req.tier,
        fleets,
        current: gpuType,
        retries,
        failureType: failureTypeOf(err),
        soloBatch,
      });
      if (plan.action === 'give-up') throw err;
      log.warn('GPU attempt failed; retrying', {
        requestId: req.requestId,
        gpuType,
        retry: plan.retry,
        path: plan.path,
        nextGpuType: plan.gpuType,
        delayMs: plan.delayMs,
        priorityKey: plan.priorityKey,
      });
      await sleep(plan.delayMs);
      retries = plan.retry;
      soloBatch = plan.soloBatch;
      priorityKey = plan.priorityKey;
      if (plan.gpuType !== gpuType) moveTo(plan.gpuType);
    }
  }
}
