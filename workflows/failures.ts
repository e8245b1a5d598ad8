// How the generateImage workflow tells a failure to the client: the failure code, a message that says something,
// and whether resubmitting could succeed. Pure functions over the error's cause chain; workflow-sandbox safe.
import { ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import type { GenerationFailure } from '../core/activities';
import { FAILURE_CODES, FAILURE_TYPES, isFailureType, type FailureCode, type FailureType } from '../core/errors';

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
  NO_CAPACITY: true,
  INTERNAL: false,
};

/** The part of the pipeline a failure came from; decides the client code when the failure has no known type. */
export type Phase = 'accept' | 'safety' | 'inference' | 'storage' | 'finish';

const PHASE_FAILURE_CODE: Readonly<Record<Phase, FailureCode>> = {
  accept: 'INTERNAL',
  // Only the 24-hour pending_safety deadline ends the safety phase with a retryable failure.
  safety: 'TIMED_OUT',
  inference: 'INFERENCE_FAILED',
  storage: 'STORAGE_FAILED',
  finish: 'INTERNAL',
};

/** Walks an error's cause chain (ActivityFailure -> ApplicationFailure -> ...) */
export function* causes(err: unknown): Generator<unknown> {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 10; depth++) {
    yield e;
    e = e instanceof Error ? e.cause : undefined;
  }
}

/** Whether an activity failed because no worker started it within its schedule-to-start bound. */
export function isScheduleToStartTimeout(err: unknown): boolean {
  for (const e of causes(err)) {
    if (e instanceof TimeoutFailure) return e.timeoutType === 'SCHEDULE_TO_START';
  }
  return false;
}

/** A failure that more attempts could fix: not cancelled, not marked non-retryable, not of a non-retryable type. */
export function isRetryableFailure(err: unknown): boolean {
  for (const e of causes(err)) {
    if (e instanceof ApplicationFailure) {
      return (
        !e.nonRetryable && !(isFailureType(e.type ?? undefined) && !FAILURE_TYPES[e.type as FailureType].retryable)
      );
    }
  }
  return true;
}

/**
 * The client-facing code and message of a failure: the code from the first ApplicationFailure of a known type in
 * the cause chain, else the phase's code; the message from the innermost error ("Activity task failed" says
 * nothing), noting a timeout when one ended the attempts.
 */
export function describeFailure(err: unknown, phase: Phase): GenerationFailure {
  let code: FailureCode | undefined;
  let quarantined = false;
  let message = 'Unknown failure';
  let timeout: string | undefined;
  for (const e of causes(err)) {
    if (code === undefined && e instanceof ApplicationFailure && isFailureType(e.type ?? undefined)) {
      code = FAILURE_TYPES[e.type as FailureType].code;
      quarantined = e.type === 'Quarantined';
    }
    if (e instanceof TimeoutFailure) timeout ??= (e.timeoutType ?? 'activity').toLowerCase().replace(/_/g, '-');
    if (e instanceof Error && e.message) message = e.message;
  }
  if (timeout && !message.includes('timeout')) message = `${message} (${timeout} timeout)`;
  const finalCode = code ?? PHASE_FAILURE_CODE[phase];
  // A quarantined request failed on several workers: resubmitting it would only fail more.
  return { code: finalCode, message, retryable: CLIENT_MAY_RETRY[finalCode] && !quarantined };
}

/**
 * The failure as the client may see it. Messages of failed activities can name model paths, worker hosts or object
 * keys, so the client gets the code's documented meaning instead; a refused prompt keeps its message, which names
 * the policy categories it matched and nothing internal. Operators find the full message in Temporal.
 */
export function clientFailure(failure: GenerationFailure): GenerationFailure {
  return failure.code === 'UNSAFE_PROMPT' ? failure : { ...failure, message: FAILURE_CODES[failure.code] };
}
