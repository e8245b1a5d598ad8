// The gateway's side of Temporal: starting a request's workflow idempotently (one workflow per user + requestId),
// cancelling it, and checking readiness. Temporal may be briefly unreachable (a server restart, a deploy): calls
// are retried with back-off for a bounded time before the client is told SERVICE_UNAVAILABLE.
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  isGrpcServiceError,
} from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import { generationWorkflowId, type GenerationRequest } from '../core/request';
import { startGenerationOptions } from '../core/start-options';
import type { Logger } from '../runtime/logger';

/** Thrown when Temporal stayed unreachable for the whole retry window, or refused the call outright. */
export class OrchestratorUnavailableError extends Error {
  override readonly name = 'OrchestratorUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type CancelOutcome = 'cancel-requested' | 'already-closed' | 'unknown-request';

export interface OrchestratorOptions {
  /** How long a call keeps retrying while Temporal is unreachable, ms. */
  readonly retryWindowMs: number;
  readonly log: Logger;
}

/**
 * gRPC status codes that mean "try again": UNKNOWN (2), DEADLINE_EXCEEDED (4), RESOURCE_EXHAUSTED (8),
 * ABORTED (10), INTERNAL (13, e.g. a stream reset while the server restarts), UNAVAILABLE (14).
 */
const TRANSIENT_CODES = new Set<number>([2, 4, 8, 10, 13, 14]);

/** Whether an error from the Temporal client (a gRPC error, possibly wrapped in ServiceError) is transient. */
export function isTransientTemporalError(err: unknown): boolean {
  for (
    let e: unknown = err, depth = 0;
    e !== undefined && e !== null && depth < 5;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    if (isGrpcServiceError(e)) return TRANSIENT_CODES.has(e.code);
  }
  // No gRPC status at all: a connection that never came up ("Failed to connect"), a DNS failure, a reset socket.
  return (
    err instanceof Error &&
    !(err instanceof WorkflowNotFoundError) &&
    !(err instanceof WorkflowExecutionAlreadyStartedError)
  );
}

/** One attempt's deadline: short enough that a hung call is retried, long enough for a loaded server. */
const ATTEMPT_TIMEOUT_MS = 5000;

export class GenerationOrchestrator {
  constructor(
    readonly client: Client,
    private readonly options: OrchestratorOptions,
  ) {}

  /** A Client whose connection is made on first use, so the gateway starts (and reports unready) without Temporal. */
  static connectLazily(address: string, namespace: string): { client: Client; connection: Connection } {
    const connection = Connection.lazy({ address });
    // Workflow starts carry the caller's trace context in their headers, so the workflow joins the request's trace.
    const interceptors = { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
    return { client: new Client({ connection, namespace, interceptors }), connection };
  }

  /**
   * Starts the request's workflow, or finds the one this user + requestId already has. USE_EXISTING covers a
   * running workflow; REJECT_DUPLICATE makes a closed one answer "already started" instead of running the
   * request a second time. Either way the caller re-attaches to the same workflow's event log.
   */
  async start(request: GenerationRequest, signal?: AbortSignal): Promise<string> {
    const { workflowType, ...options } = startGenerationOptions(request);
    return this.withRetry('start', signal, async () => {
      try {
        const handle = await this.client.workflow.start(workflowType, {
          ...options,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
        return handle.workflowId;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return options.workflowId;
        throw err;
      }
    });
  }

  /**
   * Requests cancellation of a user's request. Only ids of the user's own workflows can be formed here (the
   * workflow id embeds the user id), so a user can never reach another user's request.
   */
  async cancel(userId: string, requestId: string): Promise<CancelOutcome> {
    const handle = this.client.workflow.getHandle(generationWorkflowId(userId, requestId));
    return this.withRetry('cancel', undefined, async () => {
      let running: boolean;
      try {
        running = (await handle.describe()).status.name === 'RUNNING';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return 'unknown-request';
        throw err;
      }
      // A closed request keeps its one terminal event; cancelling it changes nothing.
      if (!running) return 'already-closed';
      try {
        await handle.cancel();
        return 'cancel-requested';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return 'already-closed'; // it finished in between
        throw err;
      }
    });
  }

  /** Whether the Temporal frontend answers now (for /readyz); never throws. */
  async check(timeoutMs = 2000): Promise<{ ok: true } | { ok: false; error: string }> {
    try {
      await this.client.connection.withDeadline(Date.now() + timeoutMs, () =>
        this.client.workflowService.getSystemInfo({}),
      );
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  private async withRetry<T>(what: string, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.options.retryWindowMs;
    for (let attempt = 1; ; attempt++) {
      const attemptDeadline = Math.min(deadline, Date.now() + ATTEMPT_TIMEOUT_MS);
      try {
        return await this.client.connection.withDeadline(Math.max(attemptDeadline, Date.now() + 500), call);
      } catch (err) {
        if (!isTransientTemporalError(err)) {
          throw new OrchestratorUnavailableError(`Temporal refused the ${what}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        const backoffMs = Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * (0.8 + Math.random() * 0.4);
        if (Date.now() + backoffMs >= deadline || signal?.aborted) {
          throw new OrchestratorUnavailableError(
            `Temporal unreachable for ${what} after ${attempt} attempts: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
        this.options.log.warn({ err: (err as Error).message, attempt, what }, 'Temporal call failed; retrying');
        await sleep(backoffMs, signal);
      }
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
