// Honest expectations at the gateway (issue 11): the estimate `accepted` carries (core/estimate.ts, from the fleet's
// latest queue sample), the request's entry in its queue's set of waiting requests (runtime/queue-positions.ts), and
// the queue updates its client gets while it waits.
//
// Queue updates are live frames, not events of the request's log: a `status` frame with `status: 'queued'`,
// `queuePosition` and `etaMs`, carrying the seq of the newest event the client was sent. So it moves no numbering,
// cannot be reordered with the log's events (it goes out on the same connection, only between a waiting status and
// the next event), a re-attach replays the log without stale positions, and a client that drops seqs it has seen
// ignores it. Logging it would have made every gateway following the request write its own copies into a log that
// keeps status events for the request's whole life, and a periodic `queued` could land after the worker's
// `generating`. One timer per gateway reads every waiting request's position, so a thousand waiting requests cost a
// thousand small reads per period, not a thousand timers.
import type { RedisClient } from '../runtime/redis';
import type { QueueSnapshot } from '../core/capacity';
import {
  estimateRequest,
  queuedEtaMs,
  serviceMs,
  standingChanged,
  tiersAheadOf,
  type QueueStanding,
  type RequestEstimate,
} from '../core/estimate';
import { isTerminalEvent, type SequencedEvent } from '../core/events';
import { gpuTaskQueueForTier, type GpuType } from '../core/gpu';
import type { GenerationRequest } from '../core/request';
import { routeToGpu } from '../core/routing';
import type { Tier } from '../core/tiers';
import { CapacityStore } from '../runtime/capacity-store';
import type { Logger } from '../runtime/logger';
import { QueuePositions, type QueuePlace } from '../runtime/queue-positions';
import { cachedFor } from './async';

/** How long a queue sample read is reused, ms (samples are taken every 5 s). */
const SAMPLE_CACHE_MS = 1_000;

/** Statuses in which a request waits for a GPU: its queue updates run while one of them is the newest it was sent. */
const WAITING_STATUSES: ReadonlySet<string> = new Set(['queued', 'safety_check']);

export interface RequestExpectationsOptions {
  readonly region: string;
  /** Period of queue updates, ms; 0 sends none. */
  readonly queueUpdateIntervalMs: number;
  readonly log: Logger;
}

/** One request's queue updates on one connection. */
export interface QueueFollow {
  /** Every event the client is sent for the request, in order: updates run while the newest is a waiting status. */
  observe(event: SequencedEvent): void;
  /** No more updates (the request left the queue, or the connection no longer follows it). */
  stop(): void;
}

interface Watch {
  readonly workflowId: string;
  readonly place: QueuePlace;
  readonly ahead: readonly Tier[];
  readonly serviceMs: number;
  readonly send: (standing: QueueStanding, seq: number) => void;
  /** Seq of the newest event sent; 0 until one is. */
  seq: number;
  /** When the follow began, ms since epoch: the first update comes a period after it. */
  readonly since: number;
  waiting: boolean;
  last: QueueStanding | undefined;
}

export class RequestExpectations {
  private readonly positions: QueuePositions;
  private readonly sample: (taskQueue: string) => Promise<QueueSnapshot | undefined>;
  private readonly watches = new Set<Watch>();
  private readonly timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly options: RequestExpectationsOptions,
  ) {
    this.positions = new QueuePositions(redis, prefix);
    const store = new CapacityStore(redis, prefix);
    this.sample = cachedFor(SAMPLE_CACHE_MS, (taskQueue: string) => store.read(taskQueue));
    if (options.queueUpdateIntervalMs > 0) {
      this.timer = setInterval(() => void this.tick(), options.queueUpdateIntervalMs);
      this.timer.unref();
    }
  }

  private place(request: GenerationRequest): QueuePlace & { readonly gpuType: GpuType } {
    const { gpuType } = routeToGpu(request);
    return { gpuType, tier: request.tier, taskQueue: gpuTaskQueueForTier(request.region, gpuType, request.tier) };
  }

  /** The estimate for `accepted`; undefined (logged) when it cannot be made, which never holds the request up. */
  async estimate(request: GenerationRequest): Promise<RequestEstimate | undefined> {
    try {
      const { gpuType, taskQueue } = this.place(request);
      const queue = await this.sample(taskQueue).catch((err: unknown) => {
        this.options.log.warn({ err, taskQueue }, 'Queue sample unreadable; estimating without a wait');
        return undefined;
      });
      return estimateRequest(request, gpuType, queue);
    } catch (err) {
      this.options.log.warn({ err, requestId: request.requestId }, 'Could not estimate the request');
      return undefined;
    }
  }

  /** A new request starts waiting in its fleet's queue. Never throws: without its entry it just has no position. */
  async enter(workflowId: string, request: GenerationRequest): Promise<void> {
    await this.positions.enter(workflowId, this.place(request)).catch((err: unknown) => {
      this.options.log.warn({ err, workflowId }, 'Could not enter the request in its queue');
    });
  }

  /** Queue updates of one request for one client; `send` gets each new standing with the seq to put on it. */
  follow(workflowId: string, request: GenerationRequest, send: Watch['send']): QueueFollow {
    if (this.timer === undefined) return { observe: () => undefined, stop: () => undefined };
    const { gpuType, ...place } = this.place(request);
    const watch: Watch = {
      workflowId,
      place,
      ahead: tiersAheadOf(request.region, gpuType, request.tier),
      serviceMs: serviceMs(request, gpuType),
      send,
      seq: 0,
      since: Date.now(),
      waiting: false,
      last: undefined,
    };
    this.watches.add(watch);
    return {
      observe: (event) => {
        watch.seq = event.seq;
        if (event.type === 'status') watch.waiting = WAITING_STATUSES.has(event.status);
        if ((event.type === 'status' && !watch.waiting) || isTerminalEvent(event)) this.watches.delete(watch);
      },
      stop: () => {
        this.watches.delete(watch);
      },
    };
  }

  /** Stops the updates (gateway shutdown). */
  close(): void {
    clearInterval(this.timer);
    this.watches.clear();
  }

  /** One round of updates: every waiting request's position, sent where it changed. A slow round skips the next. */
  private async tick(): Promise<void> {
    if (this.ticking || this.watches.size === 0) return;
    this.ticking = true;
    let failed = 0;
    let lastError: unknown;
    try {
      // `accepted` told the client what to expect: a request that has waited less than a period needs no update.
      const due = Date.now() - this.options.queueUpdateIntervalMs;
      const waiting = [...this.watches].filter((w) => w.waiting && w.since <= due);
      await Promise.all(
        waiting.map((w) =>
          this.update(w).catch((err: unknown) => {
            failed++;
            lastError = err;
          }),
        ),
      );
      if (failed > 0) this.options.log.warn({ err: lastError, failed }, 'Queue positions unreadable this round');
    } finally {
      this.ticking = false;
    }
  }

  private async update(watch: Watch): Promise<void> {
    const [position, queue] = await Promise.all([
      this.positions.position(watch.workflowId, watch.place, watch.ahead),
      this.sample(watch.place.taskQueue),
    ]);
    // Gone from the set (a GPU took it, or it was pruned), or it stopped waiting while this round read.
    if (position === undefined || !watch.waiting || !this.watches.has(watch)) return;
    const etaMs = queuedEtaMs(position, queue, watch.serviceMs);
    const standing: QueueStanding = { queuePosition: position, ...(etaMs !== undefined ? { etaMs } : {}) };
    if (!standingChanged(watch.last, standing)) return;
    watch.last = standing;
    watch.send(standing, watch.seq);
  }
}
