// A request's deadline in the generateImage workflow (GenerationRequest.deadlineAt: the gateway's acceptance time plus
// the client's `deadlineMs`). Workflow code: time is the workflow's own (Date.now() in the sandbox is the current
// workflow task's time, the same on replay), never a clock read anew.
//
// The deadline holds in three places, so that none of them alone has to be exact:
// - a workflow timer over screening and the GPU step (withinDeadline): when it fires, the work's scope is cancelled,
//   and the GPU step, which waits for its activity's cancellation to complete, ends only once the GPU has stopped;
// - the server: each GPU attempt's schedule-to-start and start-to-close are cut to the time left (gpuAttemptBounds),
//   so no worker takes a request past its deadline even while no workflow task runs, and the patient safety attempts
//   end by it too;
// - the GPU worker stops the run at the deadline on its own clock (activities/inference.ts), instead of a heartbeat
//   after the workflow's cancel reaches it.
// Requests without a deadline take none of these paths and record exactly the commands they always did: no patch.
import { ApplicationFailure, CancellationScope, isCancellation, sleep, TimeoutFailure } from '@temporalio/workflow';
import { causes } from './failures';

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

function isTimeout(err: unknown): boolean {
  for (const e of causes(err)) if (e instanceof TimeoutFailure) return true;
  return false;
}

/**
 * Runs `work` so that it ends by `deadlineAt`: a timer cancels it there, and the cancellation, or a timeout the server
 * enforced at the deadline, becomes DeadlineExceeded. Other failures keep their own type (a refused prompt is still
 * UNSAFE_PROMPT), and a cancel of the whole request (the client's) stays a cancel. Without a deadline `work` simply
 * runs, adding no command.
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
  void timerScope.run(() => sleep(msUntil(deadlineAt))).then(
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
    if (cutShort && (isCancellation(err) || isTimeout(err))) throw deadlineExceeded(deadlineAt, during());
    throw err;
  } finally {
    if (!expired) timerScope.cancel();
  }
}

/** The server-side bounds of one GPU attempt: the fleet's wait, and for a request with a deadline both cut to it. */
export interface GpuAttemptBounds {
  readonly scheduleToStartTimeout: number;
  readonly startToCloseTimeout?: number;
}

/**
 * How long a GPU attempt may wait for a worker (`fleetBoundMs`, the fleet's) and run, given the request's deadline:
 * neither past it. Throws DeadlineExceeded when no time is left to schedule it at all.
 */
export function gpuAttemptBounds(fleetBoundMs: number, deadlineAt: number | undefined): GpuAttemptBounds {
  if (deadlineAt === undefined) return { scheduleToStartTimeout: fleetBoundMs };
  checkDeadline(deadlineAt, 'before a GPU worker took the request');
  const left = msUntil(deadlineAt);
  // Start-to-close counts from the start, so cut to the time left now it ends at the deadline or, after a wait in the
  // queue, a little past it: a backstop for the worker's own stop and the workflow's cancel, both at the deadline.
  return { scheduleToStartTimeout: Math.min(fleetBoundMs, left), startToCloseTimeout: left };
}
