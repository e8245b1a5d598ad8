// Events about one request, as activities and the gateway publish them into the per-request event log in Redis
// (activities/events.ts). The gateway turns each into a server frame (core/protocol.ts) and adds `seq`.
import type { FailureCode } from './errors';
import type { RequestEstimate } from './estimate';
import type { GpuType } from './gpu';
import type { GenerationStatus } from './status';

export interface StoredImageRef {
  /** Object-store key; the gateway serves it at `GET /v1/images/<key>`. */
  readonly key: string;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
}

export type RequestEvent =
  | {
      readonly type: 'accepted';
      readonly workflowId: string;
      /** What the request should take, cost and when it should be done, as judged at acceptance (core/estimate.ts). */
      readonly estimate?: RequestEstimate;
    }
  | {
      readonly type: 'status';
      readonly status: GenerationStatus;
      readonly gpuType?: GpuType;
      /** On `queued`: the region the request runs in. */
      readonly region?: string;
      /** On `queued`: true when that is not the region of the gateway it was sent to (issue 12's failover). */
      readonly degraded?: boolean;
    }
  | { readonly type: 'progress'; readonly step: number; readonly totalSteps: number }
  | { readonly type: 'completed'; readonly images: readonly StoredImageRef[] }
  | {
      readonly type: 'failed';
      readonly code: FailureCode;
      /** What the client may read: the code's documented meaning (or the safety categories); never internals. */
      readonly message: string;
      readonly retryable: boolean;
      /** Names this failure for operators, who find its details in Temporal (the run id) and the logs. */
      readonly correlationId?: string;
    };

/**
 * An event as read back from a request's log. `seq` is assigned by Redis at publish time: 1, 2, 3... per request,
 * always increasing (a log lost while its request runs goes on from a larger base; runtime/lua/publish-event-4.lua).
 * The log is keyed by the workflow id (globally unique), not the client's requestId (unique per user only).
 */
export type SequencedEvent = RequestEvent & { readonly seq: number };

export function isTerminalEvent(event: RequestEvent): boolean {
  return event.type === 'completed' || event.type === 'failed';
}
