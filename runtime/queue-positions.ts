// Where each waiting request stands in its fleet's queue, in Redis: the gateway enters a request when it accepts it,
// and whoever sees it leave takes it out: the GPU worker that publishes `generating`, and the control worker when its
// terminal event is written (a request cancelled, refused or failed while it waited). Its position is its rank among
// its tier's waiting requests, plus every request waiting in the same queue at a higher priority.
//
// Approximate by design: within a tier Temporal dispatches by fairness key and weight (core/fairness.ts), not strictly
// by arrival, and a request that fails over to another fleet keeps its place in the first one's set. Members older
// than their tier's wait bound are pruned as the sets are read and written, so a lost removal (a worker killed between
// its publish and the removal) never inflates positions for longer than that bound: past it the request has moved on
// to another fleet anyway (workflows/activity-options.ts).
//
// Keys, under the deployment prefix:
//   `queue:{<task queue>}:<tier>`  sorted set, workflow id -> accepted at (ms). The tiers of one task queue share a
//                                  hash tag, so one MULTI reads them all in one Redis Cluster slot.
//   `queued:{<workflow id>}`       the set the request was entered in, so a worker that knows only the workflow id
//                                  can take it out; it expires with the tier's bound.
import type { RedisClient } from './redis';
import { TIER_QUEUE_WAIT_BOUND_MS } from '../core/capacity';
import { isTerminalEvent, type RequestEvent } from '../core/events';
import type { Tier } from '../core/tiers';
import type { RequestEventPublisher } from './event-log';
import type { Logger } from './logger';

/** The set of waiting requests a request is counted in. */
export interface QueuePlace {
  /** The task queue the request waits in for its fleet (core/gpu.ts gpuTaskQueueForTier). */
  readonly taskQueue: string;
  readonly tier: Tier;
}

export class QueuePositions {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private setKey({ taskQueue, tier }: QueuePlace): string {
    return `${this.prefix}queue:{${taskQueue}}:${tier}`;
  }

  private placeKey(workflowId: string): string {
    return `${this.prefix}queued:{${workflowId}}`;
  }

  /** The request starts waiting at `place`. A request entered already keeps its first place. */
  async enter(workflowId: string, place: QueuePlace, now = Date.now()): Promise<void> {
    const key = this.setKey(place);
    const bound = TIER_QUEUE_WAIT_BOUND_MS[place.tier];
    await Promise.all([
      this.redis
        .multi()
        .zremrangebyscore(key, '-inf', now - bound)
        .zadd(key, 'NX', now, workflowId)
        // A fleet nobody queues for any more leaves no set behind.
        .pexpire(key, bound)
        .exec(),
      this.redis.set(this.placeKey(workflowId), key, 'PX', bound),
    ]);
  }

  /** The request no longer waits (a GPU took it, or it ended). Idempotent. */
  async leave(workflowId: string): Promise<void> {
    const placeKey = this.placeKey(workflowId);
    const key = await this.redis.get(placeKey);
    if (key === null) return;
    await Promise.all([this.redis.zrem(key, workflowId), this.redis.del(placeKey)]);
  }

  /**
   * The request's position at `place`, 1 for the next one a worker takes: its rank in its tier's set, after every
   * request waiting in the same queue at a tier in `ahead` (higher priorities). Undefined when it is not waiting.
   */
  async position(
    workflowId: string,
    place: QueuePlace,
    ahead: readonly Tier[],
    now = Date.now(),
  ): Promise<number | undefined> {
    const multi = this.redis.multi();
    const prune = (tier: Tier): string => {
      const key = this.setKey({ taskQueue: place.taskQueue, tier });
      multi.zremrangebyscore(key, '-inf', now - TIER_QUEUE_WAIT_BOUND_MS[tier]);
      return key;
    };
    multi.zrank(prune(place.tier), workflowId);
    for (const tier of ahead) multi.zcard(prune(tier));
    const replies = (await multi.exec()) ?? [];
    // Replies alternate: a prune's count, then the rank or a count.
    const values = replies
      .filter((_, i) => i % 2 === 1)
      .map(([err, value]) => {
        if (err) throw err;
        return value as number | null;
      });
    const [rank, ...higher] = values;
    if (rank === null || rank === undefined) return undefined;
    return rank + 1 + higher.reduce<number>((sum, n) => sum + (n ?? 0), 0);
  }
}

/** Whether a request that publishes `event` has left its queue: a GPU took it, or it ended. */
export function leavesQueue(event: RequestEvent): boolean {
  return (
    (event.type === 'status' && (event.status === 'generating' || event.status === 'uploading')) ||
    isTerminalEvent(event)
  );
}

/**
 * An event log that also takes a request out of its queue's set when it publishes an event that says it left (after
 * the publish, which it never delays or fails: a removal lost to a Redis blip is pruned with the tier's bound).
 * GPU workers wrap their log in it for `generating`, the control worker for the terminal events.
 */
export class QueueLeavingEventLog implements RequestEventPublisher {
  constructor(
    private readonly inner: RequestEventPublisher,
    private readonly positions: Pick<QueuePositions, 'leave'>,
    private readonly onError: (err: unknown) => void,
  ) {}

  async publish(logId: string, event: RequestEvent, dedupeKey?: string): Promise<number> {
    const seq = await this.inner.publish(logId, event, dedupeKey);
    if (leavesQueue(event)) this.positions.leave(logId).catch(this.onError);
    return seq;
  }
}

/** `inner`, taking requests out of their queue's set in Redis as they leave it; a failed removal is logged. */
export function withQueueLeaving(
  inner: RequestEventPublisher,
  redis: RedisClient,
  prefix: string,
  log: Pick<Logger, 'warn'>,
): QueueLeavingEventLog {
  return new QueueLeavingEventLog(inner, new QueuePositions(redis, prefix), (err) =>
    log.warn({ err }, 'Could not take a request out of its queue'),
  );
}
