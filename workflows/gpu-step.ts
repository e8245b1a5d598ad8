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
// - Deadline: a request with a deadline (workflows/deadline.ts) waits for each fleet and runs at most until then, is
//   not moved to another fleet nor retried once it has passed, and a retry whose backoff would end past it is not
//   made: the request ends DeadlineExceeded (TIMED_OUT). No patch: requests without a deadline take none of this.
import {
  ApplicationFailure,
  CancellationScope,
  setHandler,
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
import { GpuTypeKey, QuarantinedKey, RegionKey } from '../core/search-attributes';
import { fleetActivities, GPU_SCHEDULE_TO_START } from './activity-options';
import { checkDeadline, deadlineExceeded, gpuAttemptBounds, msUntil } from './deadline';
import { causes, isScheduleToStartTimeout } from './failures';
import { moveRegionSignal, type RegionMove } from './region-move';

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

function describeBound(boundMs: number): string {
  return boundMs % 1000 === 0 ? `${boundMs / 1000} s` : `${boundMs} ms`;
}

/** Names what failed an attempt, for the message of a request that then ran out of time. */
function describeFailureType(err: unknown): string {
  return failureTypeOf(err) ?? (err instanceof Error ? err.name : 'unknown failure');
}

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

/**
 * One request's GPU step: the fleet it is on, its retries so far and how the next attempt is scheduled. Each method
 * issues its commands in the order the step always has (replay compares them).
 */
class GpuStep {
  gpuType: GpuType;
  private readonly fleets: readonly GpuType[];
  /** The wait each fleet gets to start the step, ms. */
  private readonly bound: number;
  private readonly fairness: ReturnType<typeof requestFairness>;
  private readonly unstarted: GpuType[] = [];
  private readonly failedOn = new Set<string>();
  private retries = 0;
  private soloBatch = false;
  private priorityKey: number | undefined;
  /** The region whose fleets run the attempts: the request's, until a `moveRegion` signal names another. */
  region: string;
  /** A move asked for and not made yet. */
  private move: RegionMove | undefined;
  /** The scope of the attempt in flight, which a move cancels while it waits to start. */
  private scope: CancellationScope | undefined;

  constructor(
    private readonly req: GenerationRequest,
    route: RoutingDecision,
    private readonly onFleet: (gpuType: GpuType) => void,
  ) {
    this.region = req.region;
    this.gpuType = route.gpuType;
    this.fleets = [route.gpuType, ...route.alternatives];
    this.bound = req.gpuStartTimeoutMs ?? GPU_SCHEDULE_TO_START[req.tier];
    this.fairness = requestFairness(req);
  }

  /** Runs one attempt on the current fleet of the current region, in a scope a region move can cancel. */
  attempt(): Promise<InferenceOutput> {
    return CancellationScope.cancellable(() => {
      this.scope = CancellationScope.current();
      return this.attemptHere();
    }).finally(() => (this.scope = undefined));
  }

  /** A `moveRegion` signal: noted, and the attempt cancelled if it waits to start (the signal's sender saw it so). */
  requestMove(move: RegionMove): void {
    if (move.from !== this.region || move.to === this.region) return;
    this.move = move;
    if (move.cancelWaiting) this.scope?.cancel();
  }

  /** Whether an attempt that just ended was cancelled by a region move (and not by the request's own cancel). */
  movedAway(err: unknown): boolean {
    return this.move?.cancelWaiting === true && isCancellation(err) && !CancellationScope.current().consideredCancelled;
  }

  /** Makes a move asked for, before the next attempt; the caller tells the client. Undefined when there is none. */
  takeMove(): string | undefined {
    const move = this.move;
    this.move = undefined;
    if (!move || move.from !== this.region) return undefined;
    log.warn('Request moves to another region', { requestId: this.req.requestId, from: move.from, to: move.to });
    this.region = move.to;
    this.unstarted.length = 0;
    upsertSearchAttributes([{ key: RegionKey, value: move.to }]);
    return move.to;
  }

  private attemptHere(): Promise<InferenceOutput> {
    const { req, gpuType, soloBatch } = this;
    const { deadlineAt } = req;
    const activities = fleetActivities(this.region, gpuType, req.tier, {
      ...gpuAttemptBounds(this.bound, deadlineAt),
      retry: this.retries,
      priorityKey: this.priorityKey,
      fairness: this.fairness,
    });
    return activities.runInference({
      requestId: req.requestId,
      userId: req.userId,
      ...generationParams(req),
      gpuType,
      ...(soloBatch ? { soloBatch } : {}),
      ...(deadlineAt === undefined ? {} : { deadlineAt }),
    });
  }

  /** No worker of the current fleet started the attempt in time: the next fleet allowed, or NoCapacity. */
  moveOnFromUnstarted(): void {
    const { req, gpuType, bound } = this;
    this.unstarted.push(gpuType);
    log.warn('No worker of the fleet started the GPU step in time', { requestId: req.requestId, gpuType, bound });
    const next = this.fleets.find((fleet) => !this.unstarted.includes(fleet));
    if (next === undefined) {
      throw ApplicationFailure.create({
        type: 'NoCapacity',
        message: `No worker of ${this.unstarted.join(', ')} started the request within ${describeBound(bound)} each`,
        nonRetryable: true,
      });
    }
    this.moveTo(next);
  }

  /** After a failed attempt: waits out a retry's backoff and sets the retry up, or throws what ends the request. */
  async recover(err: unknown): Promise<void> {
    const { req, gpuType } = this;
    const { deadlineAt } = req;
    quarantineIfPoison(req, err, this.failedOn);
    const plan = planRecovery({
      tier: req.tier,
      fleets: this.fleets,
      current: gpuType,
      retries: this.retries,
      failureType: failureTypeOf(err),
      soloBatch: this.soloBatch,
      ...(deadlineAt === undefined ? {} : { msLeft: msUntil(deadlineAt) }),
    });
    if (plan.action === 'give-up') {
      throw plan.reason === 'deadline' && deadlineAt !== undefined
        ? deadlineExceeded(deadlineAt, `before a retry on ${gpuType} could start (${describeFailureType(err)})`)
        : err;
    }
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
    this.retries = plan.retry;
    this.soloBatch = plan.soloBatch;
    this.priorityKey = plan.priorityKey;
    if (plan.gpuType !== gpuType) this.moveTo(plan.gpuType);
  }

  private moveTo(next: GpuType): void {
    this.gpuType = next;
    upsertSearchAttributes([{ key: GpuTypeKey, value: next }]);
    this.onFleet(next);
  }
}

/**
 * Runs the request's inference on some fleet the routing matrix allows. `onFleet` is told whenever the request
 * moves to another fleet than the one it was on.
 */
export async function runGpuStep(
  req: GenerationRequest,
  route: RoutingDecision,
  on: { fleet: (gpuType: GpuType) => void; region: (region: string) => Promise<void> },
): Promise<{ gpuType: GpuType; inference: InferenceOutput }> {
  const step = new GpuStep(req, route, on.fleet);
  setHandler(moveRegionSignal, (move) => step.requestMove(move));
  for (;;) {
    const movedTo = step.takeMove();
    if (movedTo !== undefined) await on.region(movedTo);
    try {
      const inference = await step.attempt();
      return { gpuType: step.gpuType, inference };
    } catch (err) {
      if (step.movedAway(err)) continue;
      // Past the deadline, whatever ended the attempt (the bounds cut to it, the worker's own stop at it, or a failure
      // just before) ends the request: no other fleet and no retry could finish in time. A cancel is passed on.
      if (!isCancellation(err)) checkDeadline(req.deadlineAt, `while the request was on ${step.gpuType}`);
      if (isScheduleToStartTimeout(err)) {
        step.moveOnFromUnstarted();
        continue;
      }
      if (isCancellation(err) || !patched(GPU_RECOVERY_PATCH)) throw err;
      await step.recover(err);
    }
  }
}
