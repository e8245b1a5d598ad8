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
import { ApplicationFailure, isCancellation, log, patched, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import type { InferenceOutput } from '../core/activities';
import { isFailureType, type FailureType } from '../core/errors';
import type { GpuType } from '../core/gpu';
import { generationParams } from '../core/generation-params';
import { planRecovery } from '../core/recovery';
import type { GenerationRequest } from '../core/request';
import type { RoutingDecision } from '../core/routing';
import { GpuTypeKey } from '../core/search-attributes';
import { fleetActivities, GPU_SCHEDULE_TO_START } from './activity-options';
import { causes, isScheduleToStartTimeout } from './failures';

/** Patch id of the workflow-driven recovery of the GPU step. */
export const GPU_RECOVERY_PATCH = 'gpu-recovery-v1';

/** The ApplicationFailure type of a failed attempt, when it is one Atelier knows. */
function failureTypeOf(err: unknown): FailureType | undefined {
  for (const e of causes(err)) {
    if (e instanceof ApplicationFailure)
      return isFailureType(e.type ?? undefined) ? (e.type as FailureType) : undefined;
  }
  return undefined;
}

function describeBound(bound: string | number): string {
  return typeof bound === 'number' ? `${bound} ms` : bound;
}

/**
 * Runs the request's inference on some fleet the routing matrix allows. `onFleet` is told whenever the request
 * moves to another fleet than the one it was on.
 */
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
