// Gateway protocol v1: the JSON text frames exchanged on `ws://<host>/v1/ws`. README "Protocol" documents them.
import type { FailureCode, FrameErrorCode, RejectCode } from './errors';
import type { RequestEstimate } from './estimate';
import type { GenerationStatus } from './status';

export const PROTOCOL_PATH = '/v1/ws';
/** Frames above this size get a FRAME_TOO_LARGE error; the connection stays open. */
export const MAX_FRAME_BYTES = 64 * 1024;
export const CLIENT_MESSAGE_TYPES = ['generate', 'cancel'] as const;

export interface CancelFrame {
  readonly type: 'cancel';
  readonly requestId: string;
}

export interface ImageResult {
  readonly url: string;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
}

export type ServerFrame =
  | { type: 'accepted'; requestId: string; workflowId: string; estimate?: RequestEstimate; seq: number }
  | {
      type: 'status';
      requestId: string;
      status: GenerationStatus;
      /**
       * Set on a live queue update only (gateway/expectations.ts): 1 = next for a GPU. Such a frame repeats the seq of
       * the newest event, so a client that drops seqs it has seen drops it too.
       */
      queuePosition?: number;
      /** With queuePosition: expected time to completion from now, ms; absent while the fleet drains nothing. */
      etaMs?: number;
      /** On `queued`: the region the request runs in. */
      region?: string;
      /** On `queued`: the request runs in another region than its gateway's (failover: expect some delay). */
      degraded?: boolean;
      seq: number;
    }
  | { type: 'progress'; requestId: string; step: number; totalSteps: number; seq: number }
  | { type: 'completed'; requestId: string; images: ImageResult[]; seq: number }
  | {
      type: 'failed';
      requestId: string;
      code: FailureCode;
      message: string;
      retryable: boolean;
      correlationId?: string;
      seq: number;
    }
  | {
      type: 'rejected';
      requestId?: string;
      code: RejectCode;
      message: string;
      details?: Record<string, string>;
      retryAfterMs?: number;
    }
  | { type: 'error'; code: FrameErrorCode; message: string };

/** WebSocket close codes the gateway uses. */
export const CLOSE_CODES = {
  /** Server shutting down: reconnect (to another instance) and re-send `generate` with the same requestIds. */
  GOING_AWAY: 1001,
  /** A frame above the hard limit (1 MiB); the gateway could not even buffer it. */
  MESSAGE_TOO_BIG: 1009,
} as const;
