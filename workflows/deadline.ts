// A request's deadline in the generateImage workflow (GenerationRequest.deadlineAt: the gateway's acceptance time plus
// the client's `deadlineMs`). Workflow code: time is the workflow's own (Date.now() in the sandbox is the current
// workflow task's time, the same on replay), never a clock read anew.
//
// The deadline holds in three places, so that none of them alone has to be exact:
// - a workflow timer over screening and the GPU step (withinDeadline): when it fires, the work's scope is cancelled,
//   and the GPU step, which waits for its activity's cancellation to complete, ends only once the GPU has stopped;
// - the server: each GPU attempt's schedule-to-start is cut to the time left (gpuAttemptBounds), so no worker takes a
//   request past its deadline even while no workflow task runs, and its start-to-close to a few seconds more, a
//   backstop that leaves the timer's cancel to act first; the patient safety attempts end by the deadline too;
// - the GPU worker stops the run at the deadline on its own clock (activities/inference.ts), instead of a heartbeat
//   after the workflow's cancel reaches it.
// Requests without a deadline take none of these paths and record exactly the commands they always did: no patch.
import { ApplicationFailure, CancellationScope, isCancellation, sleep } from '@temporalio/workflow';
import { isRetryableFailure } from './failures';

/** Ms until `deadlineAt` by workflow time; 0 or less once it has passed. */
export function msUntil(deadlineAt: number): number {
  return deadlineAt - Date.now();
}

/** The request's end once its deadline has passed: non-retryable, client code TIMED_OUT (core/errors.ts). */
export function deadlineExceeded(deadlineAt: number, during: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'DeadlineExceeded',
    message: `The request's deadline (${new Date(deadlineAt).toISOString()}) passed ${during}`,
    nonRetryable: true,
    details: [{ deadlineAt }],
  });
}

/** Ends the request now if it has a deadline and the deadline has passed. */
export function checkDeadline(deadlineAt: number | undefined, during: string): void {
  if (deadlineAt !== undefined && msUntil(deadlineAt) <= 0) throw deadlineExceeded(deadlineAt, during);
}

/**
 * Runs `work` so that it ends by `deadlineAt`: a timer cancels it there. Once the deadline has passed, the
 * cancellation, a timeout the server enforced at the deadline, or any failure that more time could have fixed becomes
 * DeadlineExceeded; a failure no retry could fix keeps its own type (a refused prompt is still UNSAFE_PROMPT), and a
 * cancel of the whole request (the client's) stays a cancel. Without a deadline `work` simply runs, adding no
 * command.
 *
 * The timer's duration is reckoned from the current workflow task's time, and the server starts it when that task
 * completes: on the lean path the first task also runs the safety screen as a local activity, so a screen that is
 * slow or down (up to a few seconds before pending_safety) delays the timer as much. What follows the screen checks
 * the deadline itself (checkDeadline, gpuAttemptBounds), so no GPU work starts late on that account.
 */
export async function withinDeadline<T>(
  deadlineAt: number | undefined,
  during: () => string,
  work: () => Promise<T>,
): Promise<T> {
  if (deadlineAt === undefined) return work();
  checkDeadline(deadlineAt, during());
  const outer = CancellationScope.current();
  const workScope = new CancellationScope();
  const timerScope = new CancellationScope();
  let expired = false;
  // The timer's promise is handled here, whichever way it settles: cancelled once the work ends first.
  void timerScope
    .run(() => sleep(msUntil(deadlineAt)))
    .then(
      () => {
        expired = true;
        workScope.cancel();
      },
      () => undefined,
    );
  try {
    return await workScope.run(work);
  } catch (err) {
    if (outer.consideredCancelled) throw err;
    const cutShort = expired || msUntil(deadlineAt) <= 0;
    if (cutShort && (isCancellation(err) || isRetryableFailure(err))) throw deadlineExceeded(deadlineAt, during());
    throw err;
  } finally {
    if (!expired) timerScope.cancel();
  }
}

/**
 * How far past the deadline a GPU attempt's start-to-close lets it run: only a backstop for when neither the worker
 * nor the workflow stops it (a worker that ignores `deadlineAt` while no workflow task can run). Shorter, and the server
 * would time the attempt out before the timer's cancel, and the request would end without waiting for the GPU to stop
 * (the timer can start a little late: see withinDeadline); the cancel reaches the worker within about a second.
 */
export const RUN_BACKSTOP_GRACE_MS = 5000;

/** The server-side bounds of one GPU attempt: the fleet's wait, and for a request with a deadline both cut by it. */
export interface GpuAttemptBounds {
  readonly scheduleToStartTimeout: number;
  readonly startToCloseTimeout?: number;
}

/**
 * How long a GPU attempt may wait for a worker (`fleetBoundMs`, the fleet's) and run, given the request's deadline:
 * no start past it, no run past it and the backstop's grace. Throws DeadlineExceeded when no time is left at all.
 */
export function gpuAttemptBounds(fleetBoundMs: number, deadlineAt: number | undefined): GpuAttemptBounds {
  if (deadlineAt === undefined) return { scheduleToStartTimeout: fleetBoundMs };
  checkDeadline(deadlineAt, 'before a GPU worker took the request');
  const left = msUntil(deadlineAt);
  return {
    scheduleToStartTimeout: Math.min(fleetBoundMs, left),
    startToCloseTimeout: left + RUN_BACKSTOP_GRACE_MS,
  };
}
