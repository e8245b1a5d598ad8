// Every ApplicationFailure an activity raises is built here from the failure table in core/errors.ts, so a failure's
// type, the client code it becomes and whether Temporal retries it are decided in one place.
import { ApplicationFailure } from '@temporalio/activity';
import { FAILURE_TYPES, type FailureType } from '../core/errors';

export interface ActivityFailureOptions {
  /** The error that caused it, kept in the failure's cause chain (and the Web UI). */
  readonly cause?: Error;
  /** Structured details for the workflow and operators, e.g. the safety categories that matched. */
  readonly details?: readonly unknown[];
}

/** An ApplicationFailure of `type`, retryable exactly when the table says so. */
export function activityFailure(
  type: FailureType,
  message: string,
  options: ActivityFailureOptions = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: !FAILURE_TYPES[type].retryable,
    ...(options.cause ? { cause: options.cause } : {}),
    ...(options.details ? { details: [...options.details] } : {}),
  });
}
