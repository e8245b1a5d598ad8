// Reading client frames (size, JSON, shape, type) and turning log events into server frames. Pure functions, so
// every malformed-input rule is in one place and the connection code only dispatches.
import { CLIENT_MESSAGE_TYPES, MAX_FRAME_BYTES, type ImageResult, type ServerFrame } from '../core/protocol';
import { FRAME_ERROR_CODES, type FrameErrorCode } from '../core/errors';
import { REQUEST_ID_PATTERN } from '../core/request';
import type { SequencedEvent } from '../core/events';
import type { QueueStanding } from '../core/estimate';

export type ClientMessageType = (typeof CLIENT_MESSAGE_TYPES)[number];

export type ReadFrameResult =
  | { readonly ok: true; readonly type: ClientMessageType; readonly frame: Record<string, unknown> }
  | { readonly ok: false; readonly error: Extract<ServerFrame, { type: 'error' }> };

function frameError(code: FrameErrorCode, message: string = FRAME_ERROR_CODES[code]): ReadFrameResult {
  return { ok: false, error: { type: 'error', code, message } };
}

/** Decodes one WebSocket message into a known client message, or the `error` frame that answers it. */
export function readClientFrame(data: Buffer, isBinary: boolean): ReadFrameResult {
  if (data.length > MAX_FRAME_BYTES) {
    return frameError('FRAME_TOO_LARGE', `The frame has ${data.length} bytes; the limit is ${MAX_FRAME_BYTES}.`);
  }
  if (isBinary) return frameError('BAD_FRAME', 'Binary frames are not part of the protocol; send JSON text frames.');
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    return frameError('BAD_JSON', `The frame is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return frameError('BAD_FRAME', 'The frame must be a JSON object.');
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return frameError('BAD_FRAME', 'The frame has no string "type".');
  if (!(CLIENT_MESSAGE_TYPES as readonly string[]).includes(type)) {
    return frameError(
      'UNKNOWN_TYPE',
      `Unknown frame type ${JSON.stringify(type.slice(0, 64))}; expected ${CLIENT_MESSAGE_TYPES.join(' or ')}.`,
    );
  }
  return { ok: true, type: type as ClientMessageType, frame: value as Record<string, unknown> };
}

/** The frame's requestId when it is a well-formed one, so a rejection can name the request it refers to. */
export function readableRequestId(frame: Record<string, unknown>): string | undefined {
  const id = frame.requestId;
  return typeof id === 'string' && REQUEST_ID_PATTERN.test(id) ? id : undefined;
}

/**
 * The frame a client receives for one event of its request's log. `imageUrl` makes the URL of a stored image
 * (image-urls.ts): built as the frame goes out, so a signed URL's lifetime starts when the client hears of it,
 * and a replay after a re-attach carries fresh URLs.
 */
export function eventToFrame(requestId: string, event: SequencedEvent, imageUrl: (key: string) => string): ServerFrame {
  const seq = event.seq;
  switch (event.type) {
    case 'accepted':
      return {
        type: 'accepted',
        requestId,
        workflowId: event.workflowId,
        ...(event.estimate ? { estimate: event.estimate } : {}),
        seq,
      };
    case 'status':
      return {
        type: 'status',
        requestId,
        status: event.status,
        ...(event.region !== undefined ? { region: event.region } : {}),
        ...(event.degraded ? { degraded: true } : {}),
        seq,
      };
    case 'progress':
      return { type: 'progress', requestId, step: event.step, totalSteps: event.totalSteps, seq };
    case 'completed': {
      const images: ImageResult[] = event.images.map((img) => ({
        url: imageUrl(img.key),
        width: img.width,
        height: img.height,
        seed: img.seed,
      }));
      return { type: 'completed', requestId, images, seq };
    }
    case 'failed':
      return {
        type: 'failed',
        requestId,
        code: event.code,
        message: event.message,
        retryable: event.retryable,
        ...(event.correlationId ? { correlationId: event.correlationId } : {}),
        seq,
      };
  }
}

/**
 * A live queue update (gateway/expectations.ts): the request still waits for a GPU, at this position. It carries the
 * seq of the newest event the client was sent, so it adds nothing to the log's numbering.
 */
export function queueUpdateFrame(requestId: string, standing: QueueStanding, seq: number): ServerFrame {
  return { type: 'status', requestId, status: 'queued', ...standing, seq };
}
