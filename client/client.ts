// A small client of gateway protocol v1, used by the command-line tool, the end-to-end tests and the benchmarks.
// It keeps one WebSocket, correlates frames to requests by requestId, drops replayed events by seq, and (by
// default) reconnects after the gateway goes away and re-sends pending requests with the same requestIds, which
// re-attaches them to their running workflows instead of starting new ones.
import { randomUUID } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import type { FrameErrorCode, RejectCode } from '../core/errors';
import { CLOSE_CODES, MAX_FRAME_BYTES, type ServerFrame } from '../core/protocol';
import type { GenerateFrame } from '../core/request';

export type AcceptedFrame = Extract<ServerFrame, { type: 'accepted' }>;
export type CompletedFrame = Extract<ServerFrame, { type: 'completed' }>;
export type FailedFrame = Extract<ServerFrame, { type: 'failed' }>;
export type RejectedFrame = Extract<ServerFrame, { type: 'rejected' }>;
export type ErrorFrame = Extract<ServerFrame, { type: 'error' }>;
/** Frames about one accepted request, each with its `seq`. */
export type RequestEventFrame = Extract<ServerFrame, { seq: number }>;
export type TerminalFrame = CompletedFrame | FailedFrame;

/** What `generate` sends: a generate frame without `type`; a missing requestId is filled in with a UUID. */
export type GenerateInput = Omit<GenerateFrame, 'type'>;

export interface AtelierClientOptions {
  /** Gateway WebSocket URL. @default 'ws://127.0.0.1:8080/v1/ws' */
  readonly url?: string;
  /** API key, sent as `Authorization: Bearer <key>`. */
  readonly apiKey: string;
  /** Reconnect and re-attach pending requests when the connection drops. @default true */
  readonly reconnect?: boolean;
  /** How long to keep trying to reconnect before pending requests fail with ConnectionLostError, ms. @default 30000 */
  readonly reconnectWindowMs?: number;
  /** Opening handshake timeout, ms. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Receives frames that belong to no pending request (e.g. a rejected cancel of another client's request). */
  readonly onUnmatchedFrame?: (frame: ServerFrame) => void;
}

/** The gateway refused the API key (HTTP 401 on the upgrade). Not retried. */
export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';
}

/** The gateway could not be reached, or answered the upgrade with something other than 101/401. */
export class GatewayConnectError extends Error {
  override readonly name = 'GatewayConnectError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A `rejected` frame answered the request: nothing was started (see `code`). */
export class RequestRejectedError extends Error {
  override readonly name = 'RequestRejectedError';
  readonly code: RejectCode;
  readonly requestId: string | undefined;
  readonly details: Readonly<Record<string, string>> | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(frame: RejectedFrame) {
    super(`${frame.code}: ${frame.message}`);
    this.code = frame.code;
    this.requestId = frame.requestId;
    this.details = frame.details;
    this.retryAfterMs = frame.retryAfterMs;
  }
}

/** The gateway could not read a frame this client sent (an `error` frame), or the frame was too large to send. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** The connection dropped and could not be re-established within the reconnect window (or reconnect is off). */
export class ConnectionLostError extends Error {
  override readonly name = 'ConnectionLostError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

interface PendingRequest {
  readonly frame: GenerateFrame & { requestId: string };
  readonly onEvent: ((frame: RequestEventFrame) => void) | undefined;
  readonly resolve: (frame: TerminalFrame) => void;
  readonly reject: (err: Error) => void;
  /** Highest seq delivered; replays after a re-attach repeat lower ones. */
  lastSeq: number;
  /** Accepted on the current socket; a `rejected` after that is about a cancel, not this generate. */
  acceptedOnSocket: boolean;
}

export class AtelierClient {
  private ws: WebSocket | null = null;
  private readonly pending = new Map<string, PendingRequest>();
  private closedByUser = false;
  private reconnecting: Promise<void> | null = null;
  private readonly url: string;

  private constructor(private readonly options: AtelierClientOptions) {
    this.url = options.url ?? 'ws://127.0.0.1:8080/v1/ws';
  }

  static async connect(options: AtelierClientOptions): Promise<AtelierClient> {
    const client = new AtelierClient(options);
    client.attach(await client.open());
    return client;
  }

  /** Requests that have not reached a terminal event yet. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Submits a request and resolves with its terminal frame (`completed` or `failed`); `onEvent` sees every frame
   * about it (accepted, status, progress, then the terminal one) once, in seq order. Rejects with
   * RequestRejectedError, ProtocolError or ConnectionLostError.
   */
  generate(input: GenerateInput, onEvent?: (frame: RequestEventFrame) => void): Promise<TerminalFrame> {
    const frame = { ...input, type: 'generate' as const, requestId: input.requestId ?? randomUUID() };
    if (this.pending.has(frame.requestId)) {
      return Promise.reject(new Error(`Request ${frame.requestId} is already pending on this client`));
    }
    const json = JSON.stringify(frame);
    if (Buffer.byteLength(json) > MAX_FRAME_BYTES) {
      return Promise.reject(
        new ProtocolError('FRAME_TOO_LARGE', `The generate frame is larger than ${MAX_FRAME_BYTES} bytes`),
      );
    }
    return new Promise<TerminalFrame>((resolve, reject) => {
      this.pending.set(frame.requestId, { frame, onEvent, resolve, reject, lastSeq: 0, acceptedOnSocket: false });
      this.sendRaw(json);
    });
  }

  /**
   * Asks the gateway to cancel a request; its `generate` promise then resolves with `failed` CANCELLED (or with
   * whatever terminal event the request reached first). Returns false when the connection is down and nothing
   * was sent.
   */
  cancel(requestId: string): boolean {
    return this.sendRaw(JSON.stringify({ type: 'cancel', requestId }));
  }

  /** Closes the connection; pending requests fail with ConnectionLostError (their workflows keep running). */
  async close(): Promise<void> {
    this.closedByUser = true;
    const ws = this.ws;
    this.failAll(new ConnectionLostError('The client was closed'));
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000, 'client closing');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  private open(): Promise<WebSocket> {
    return new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(this.url, {
        headers: { Authorization: `Bearer ${this.options.apiKey}` },
        handshakeTimeout: this.options.connectTimeoutMs ?? 10_000,
        // Completed frames with many image URLs can be large; progress frames are tiny.
        maxPayload: 16 * 1024 * 1024,
      });
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        ws.terminate();
        reject(
          status === 401
            ? new AuthenticationError(`The gateway refused the API key (HTTP 401) at ${this.url}`)
            : new GatewayConnectError(`The gateway answered HTTP ${status} at ${this.url}`),
        );
      });
      ws.once('error', (err) =>
        reject(new GatewayConnectError(`Cannot connect to ${this.url}: ${err.message}`, { cause: err })),
      );
    });
  }

  private attach(ws: WebSocket): void {
    this.ws = ws;
    ws.on('message', (data: RawData) => this.onFrame(data));
    ws.on('error', () => undefined); // 'close' follows and decides what to do
    ws.on('close', (code: number, reason: Buffer) => this.onClose(ws, code, reason.toString()));
  }

  private sendRaw(json: string): boolean {
    // While reconnecting, generate frames are re-sent from `pending` once the new socket is open.
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(json);
    return true;
  }

  private onFrame(data: RawData): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data.toString()) as ServerFrame;
    } catch {
      return;
    }
    if (frame.type === 'error') {
      // Error frames name no request; they can only answer a generate not yet accepted.
      for (const [id, p] of this.pending) {
        if (p.lastSeq === 0) {
          this.pending.delete(id);
          p.reject(new ProtocolError(frame.code, frame.message));
        }
      }
      return;
    }
    const p = frame.requestId === undefined ? undefined : this.pending.get(frame.requestId);
    if (!p) {
      this.options.onUnmatchedFrame?.(frame);
      return;
    }
    if (frame.type === 'rejected') {
      if (p.acceptedOnSocket) {
        this.options.onUnmatchedFrame?.(frame); // a refused cancel; the request itself goes on
        return;
      }
      this.pending.delete(p.frame.requestId);
      p.reject(new RequestRejectedError(frame));
      return;
    }
    if (frame.type === 'accepted') p.acceptedOnSocket = true;
    // A live queue update repeats the seq of the newest event (it is no event of the log): delivered as it comes.
    if (frame.type === 'status' && frame.queuePosition !== undefined) {
      if (frame.seq >= p.lastSeq) p.onEvent?.(frame);
      return;
    }
    const terminal = frame.type === 'completed' || frame.type === 'failed';
    // Seen already (a re-attach replays the log from its start), unless it is the outcome: a request has one, and
    // a log that was lost and begun again below the numbers this client has seen must not hide it.
    if (frame.seq <= p.lastSeq && !terminal) return;
    p.lastSeq = Math.max(p.lastSeq, frame.seq);
    p.onEvent?.(frame);
    if (frame.type === 'completed' || frame.type === 'failed') {
      this.pending.delete(p.frame.requestId);
      p.resolve(frame);
    }
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws || this.closedByUser) return;
    this.ws = null;
    const why = `connection closed (${code}${reason ? ` ${reason}` : ''})`;
    if (this.options.reconnect === false || code === CLOSE_CODES.MESSAGE_TOO_BIG) {
      this.failAll(new ConnectionLostError(`The gateway ${why}`));
      return;
    }
    this.reconnecting ??= this.reconnect(why).finally(() => {
      this.reconnecting = null;
    });
  }

  private async reconnect(why: string): Promise<void> {
    const deadline = Date.now() + (this.options.reconnectWindowMs ?? 30_000);
    let lastError: unknown = new Error(why);
    for (let attempt = 0; Date.now() < deadline && !this.closedByUser; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      try {
        const ws = await this.open();
        if (this.closedByUser) {
          ws.terminate();
          return;
        }
        this.attach(ws);
        // Same requestIds: the gateway re-attaches each to its workflow and replays its events (deduped by seq).
        for (const p of this.pending.values()) {
          p.acceptedOnSocket = false;
          ws.send(JSON.stringify(p.frame));
        }
        return;
      } catch (err) {
        lastError = err;
        if (err instanceof AuthenticationError) break;
      }
    }
    this.failAll(
      new ConnectionLostError(`The gateway ${why} and reconnecting failed: ${(lastError as Error).message}`, {
        cause: lastError,
      }),
    );
  }

  private failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }
}
