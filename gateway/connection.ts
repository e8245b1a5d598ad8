// One client's WebSocket connection: reads its frames, starts and cancels its requests, and delivers the events
// of every request it submitted (or re-attached to) in seq order from the request's event log. Nothing a client
// sends closes the connection except a frame beyond the hard size cap (ws closes with 1009) or not reading what
// the gateway sends (its outbound queue grows past the limit and the socket is dropped).
import { randomInt, randomUUID } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import type { RejectCode } from '../core/errors';
import { isTerminalEvent, type SequencedEvent } from '../core/events';
import type { ServerFrame } from '../core/protocol';
import { SEED_MAX, generationWorkflowId, validateGenerate, type GenerationRequest } from '../core/request';
import { recordAccepted } from '../runtime/event-log';
import { atelierTracer } from '../runtime/tracer';
import type { RequestPlacement } from './admission';
import type { ConnectionContext } from './connection-context';
import type { QueueFollow } from './expectations';
import { eventToFrame, queueUpdateFrame, readableRequestId, readClientFrame } from './frames';
import type { RequestTimer } from './metrics';
import { OrchestratorUnavailableError } from './orchestrator';

export type { CancelChecks, ConnectionContext } from './connection-context';

/** This connection's subscription to one request's log. */
interface RequestFollow {
  readonly requestId: string;
  /** Set once `follow` resolved. */
  unfollow: (() => Promise<void>) | null;
  /** No more frames: the terminal event went out, or a newer follow of the same request replaced this one. */
  ended: boolean;
  /** Set for a request submitted on this connection (not a re-attach): its latency and queue wait are measured. */
  readonly timer: RequestTimer | undefined;
  /** Its queue updates while it waits for a GPU. */
  readonly queue: QueueFollow;
}

export class ClientConnection {
  /** Keyed by workflow id, which is also the event log id. */
  private readonly follows = new Map<string, RequestFollow>();
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly ctx: ConnectionContext,
  ) {
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops every follow; called once the socket has closed (or the gateway is shutting down). */
  async dispose(): Promise<void> {
    this.closed = true;
    const follows = [...this.follows.values()];
    this.follows.clear();
    await Promise.allSettled(follows.map((f) => this.endFollow(f)));
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const read = readClientFrame(buffer, isBinary);
    if (!read.ok) {
      this.ctx.metrics.refused(read.error.code);
      this.send(read.error);
      return;
    }
    const work = read.type === 'generate' ? this.traced('atelier.generate', read.frame) : this.onCancel(read.frame);
    work.catch((err: unknown) =>
      this.ctx.log.error({ err, connectionId: this.ctx.connectionId }, 'Frame handling failed'),
    );
  }

  /**
   * Handles a generate frame inside a span: the first of the request's trace, whose context the workflow start
   * carries to the workflow, its activities and the GPU. It covers admission and the start; the rest of the trace
   * hangs below it.
   */
  private traced(name: string, frame: Record<string, unknown>): Promise<void> {
    const attributes = { 'atelier.user_id': this.ctx.userId, 'atelier.connection_id': this.ctx.connectionId };
    return atelierTracer().startActiveSpan(name, { attributes }, (span) =>
      this.onGenerate(frame).finally(() => span.end()),
    );
  }

  private async onGenerate(frame: Record<string, unknown>): Promise<void> {
    const receivedAt = performance.now();
    const validation = validateGenerate(frame, {
      userId: this.ctx.userId,
      region: this.ctx.region,
      now: Date.now(),
      newRequestId: () => randomUUID(),
      newSeed: () => randomInt(0, SEED_MAX + 1),
    });
    if (!validation.ok) {
      const { code, message, details } = validation.problem;
      this.reject(readableRequestId(frame), code, message, details ? { details: { ...details } } : {});
      return;
    }
    // The plan's fairness weight rides with the request to every GPU attempt (core/fairness.ts); 1 is the default.
    const weight = this.ctx.plan.fairnessWeight;
    const request = weight === 1 ? validation.value : { ...validation.value, fairnessWeight: weight };

    const admission = await this.ctx.admission.admit(request, this.ctx.plan);
    if (!admission.admitted) {
      const { code, message, retryAfterMs, details } = admission;
      this.reject(request.requestId, code, message, {
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        ...(details ? { details } : {}),
      });
      return;
    }

    // Where it runs: its region, unless the gateway's region cannot take it (gateway/region-monitor.ts).
    const placement = admission.placement;
    const placed =
      placement && placement.region !== request.region ? { ...request, region: placement.region } : request;
    const started = this.startAndAnnounce(placed, placement);
    this.ctx.trackInFlight(started);
    const start = await started;
    // Not started: the in-flight place it took is free again (a re-attach took none).
    if (start === null) await admission.release();
    // A client that left meanwhile re-sends the same requestId after reconnecting and re-attaches then.
    if (start === null || this.closed) return;
    const timer = start.isNew
      ? this.ctx.metrics.requestTimer({ tier: request.tier, model: request.model }, receivedAt)
      : undefined;
    await this.followRequest(start.workflowId, request, timer);
  }

  /**
   * Records `accepted` and `queued`, then starts the request's workflow (or finds the one it has). Null when either
   * step could not be done; the client has been told so with SERVICE_UNAVAILABLE.
   */
  private async startAndAnnounce(
    request: GenerationRequest,
    placement?: RequestPlacement,
  ): Promise<{ workflowId: string; isNew: boolean } | null> {
    const workflowId = generationWorkflowId(request.userId, request.requestId);
    let isNew: boolean;
    const estimate = await this.ctx.expectations.estimate(request);
    try {
      // Before the start (see recordAccepted). If the start then fails, the client is rejected and never follows
      // this log; a later resubmission of the same requestId continues it.
      isNew = await recordAccepted(this.ctx.eventLog, workflowId, estimate, placement);
    } catch (err) {
      this.ctx.log.warn({ err, workflowId }, 'Could not record the accepted event');
      this.reject(
        request.requestId,
        'SERVICE_UNAVAILABLE',
        'The event log is unreachable; retry with the same requestId later.',
      );
      return null;
    }
    // In its queue before a worker can take it (`generating` takes it out). Kept if the start fails: the client
    // re-sends the same requestId, which is not new then, and keeps its place (or the tier's bound prunes it).
    const entered = isNew ? this.ctx.expectations.enter(workflowId, request) : undefined;
    try {
      await this.ctx.orchestrator.start(request, this.ctx.shutdownSignal);
      await entered;
    } catch (err) {
      if (!(err instanceof OrchestratorUnavailableError)) throw err;
      this.ctx.log.warn({ err: err.message, requestId: request.requestId }, 'Workflow start failed');
      this.reject(
        request.requestId,
        'SERVICE_UNAVAILABLE',
        'The orchestrator is unreachable; retry with the same requestId later.',
      );
      return null;
    }
    return { workflowId, isNew };
  }

  /**
   * Delivers the request's whole log from seq 1, `accepted` first. A request followed already (the same
   * requestId sent again on this connection) is replayed by a fresh follow; the old one sends nothing more.
   */
  private async followRequest(workflowId: string, request: GenerationRequest, timer?: RequestTimer): Promise<void> {
    const requestId = request.requestId;
    const queue = this.ctx.expectations.follow(workflowId, request, (standing, seq) => {
      if (!follow.ended) this.send(queueUpdateFrame(requestId, standing, seq));
    });
    const follow: RequestFollow = { requestId, unfollow: null, ended: false, timer, queue };
    const previous = this.follows.get(workflowId);
    this.follows.set(workflowId, follow);
    if (previous) await this.endFollow(previous);
    try {
      follow.unfollow = await this.ctx.subscriber.follow(workflowId, 0, (event) =>
        this.deliver(workflowId, follow, event),
      );
    } catch (err) {
      if (this.follows.get(workflowId) === follow) this.follows.delete(workflowId);
      follow.queue.stop();
      this.ctx.log.warn({ err, workflowId }, 'Could not follow the event log');
      this.reject(
        requestId,
        'SERVICE_UNAVAILABLE',
        'The event log is unreachable; re-send the request with the same requestId to re-attach.',
      );
      return;
    }
    // The terminal event may have been delivered during catch-up, or the connection closed meanwhile.
    if (follow.ended || this.closed) await this.endFollow(follow);
  }

  private deliver(workflowId: string, follow: RequestFollow, event: SequencedEvent): void {
    if (follow.ended) return;
    this.send(eventToFrame(follow.requestId, event, this.ctx.imageUrl));
    follow.queue.observe(event);
    follow.timer?.delivered(event);
    if (isTerminalEvent(event)) {
      if (this.follows.get(workflowId) === follow) this.follows.delete(workflowId);
      void this.endFollow(follow);
    }
  }

  private async endFollow(follow: RequestFollow): Promise<void> {
    follow.ended = true;
    follow.queue.stop();
    const unfollow = follow.unfollow;
    follow.unfollow = null;
    if (unfollow) {
      await unfollow().catch((err: unknown) => this.ctx.log.warn({ err }, 'Unfollow failed'));
    }
  }

  private async onCancel(frame: Record<string, unknown>): Promise<void> {
    const requestId = readableRequestId(frame);
    if (requestId === undefined) {
      this.reject(undefined, 'INVALID_REQUEST', 'cancel needs the requestId of a request', {
        details: { requestId: 'letters, digits and ._:- only, at most 128' },
      });
      return;
    }
    const budget = await this.ctx.cancels.consume(this.ctx.userId).catch(() => ({ allowed: true as const }));
    if (!budget.allowed) {
      this.reject(requestId, 'RATE_LIMITED', `Too many cancels; retry in ${budget.retryAfterMs} ms`, {
        retryAfterMs: budget.retryAfterMs,
      });
      return;
    }
    const workflowId = generationWorkflowId(this.ctx.userId, requestId);
    if (!(await this.ctx.cancels.knows(this.ctx.userId, workflowId))) {
      this.reject(requestId, 'UNKNOWN_REQUEST', `No request ${JSON.stringify(requestId)} was submitted by this user.`);
      return;
    }
    let outcome;
    try {
      outcome = await this.ctx.orchestrator.cancel(this.ctx.userId, requestId);
    } catch (err) {
      this.ctx.log.warn({ err: (err as Error).message, requestId }, 'Cancel failed');
      this.reject(requestId, 'SERVICE_UNAVAILABLE', 'The orchestrator is unreachable; retry the cancel later.');
      return;
    }
    if (outcome === 'unknown-request') {
      this.reject(requestId, 'UNKNOWN_REQUEST', `No request ${JSON.stringify(requestId)} was submitted by this user.`);
    }
    // Otherwise the workflow publishes the one terminal event (failed CANCELLED, or whatever it reached first).
  }

  private reject(
    requestId: string | undefined,
    code: RejectCode,
    message: string,
    extra: { details?: Record<string, string>; retryAfterMs?: number } = {},
  ): void {
    this.ctx.metrics.refused(code);
    this.send({ type: 'rejected', ...(requestId !== undefined ? { requestId } : {}), code, message, ...extra });
  }

  /** Sends a frame unless the client stopped reading, in which case the connection is dropped instead. */
  send(frame: ServerFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > this.ctx.maxBufferedBytes) {
      this.dropSlowClient();
      return;
    }
    this.ws.send(JSON.stringify(frame));
    if (this.ws.bufferedAmount > this.ctx.maxBufferedBytes) this.dropSlowClient();
  }

  private dropSlowClient(): void {
    this.ctx.log.warn(
      { connectionId: this.ctx.connectionId, userId: this.ctx.userId, bufferedBytes: this.ws.bufferedAmount },
      'Client is not reading; disconnecting',
    );
    // terminate(), not close(): a close frame would queue behind everything the client is not reading.
    this.ws.terminate();
  }
}
