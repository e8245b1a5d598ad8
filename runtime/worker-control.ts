// The GPU fleets' control plane in Redis: the registry of live workers (each announces itself every health interval,
// and its entry lapses after the seed's 30 s heartbeat timeout), the operators' pause and drain orders for a fleet or
// a single worker, and the workers reported for replacement. The gateway's admin API writes orders and reads the rest;
// GPU workers read their orders (on a published nudge, and at every announcement in case a nudge was missed).
//
// Keys, under the deployment prefix (keys written together in one MULTI share a hash tag, so that on a Redis Cluster
// they are in one slot):
//   {workers}                       sorted set: worker id -> last announcement (ms)
//   {workers}:<id>                  JSON WorkerRecord, expires with the heartbeat timeout
//   {control}:fleet:<region>:<gpu>  'paused' while an operator pauses the fleet
//   {control}:paused-fleets         set of the paused fleets, `<region>:<gpu>`
//   control:worker:<id>             'paused' or 'drain' (kept a week: a worker id names one process)
//   replacements                    hash: worker id -> JSON ReplacementReport
//   control                         pub/sub channel: "orders changed"
import type { RedisClient } from './redis';
import { HEALTH_CHECK } from '../core/worker-health';

export type WorkerOrder = 'pause' | 'resume' | 'drain';
export const WORKER_ORDERS: readonly WorkerOrder[] = ['pause', 'resume', 'drain'];

/** What a GPU worker says of itself at each announcement. */
export interface WorkerRecord {
  readonly workerId: string;
  readonly region: string;
  readonly gpuType: string;
  /** `serving`: polls its queue; `held`: takes no work (see holds); `draining`: finishing, then exits. */
  readonly state: 'serving' | 'held' | 'draining';
  /** Why it takes no work, by reason: `paused`, `unhealthy`, `breaker`, `reload:<model>`, `gpu-error`. */
  readonly holds: Readonly<Record<string, string>>;
  /** Its own circuit breaker (seed 001 per_worker). */
  readonly breaker: string;
  readonly ready: boolean;
  /** Share of the last 60 s its GPU computed, 0..1 (the autoscaler's utilization); absent: not measured. */
  readonly dutyCycle?: number;
  readonly announcedAt: number;
}

export interface ReplacementReport {
  readonly workerId: string;
  readonly reason: string;
  readonly at: number;
}

/** What an operator has ordered for one worker: paused (by its fleet or by name), and whether to drain. */
export interface WorkerOrders {
  readonly pausedBy: 'fleet' | 'worker' | undefined;
  readonly drain: boolean;
}

const WORKER_ORDER_TTL_S = 7 * 24 * 3600;

export class WorkerControlStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  get channel(): string {
    return `${this.prefix}control`;
  }

  private get registryKey(): string {
    return `${this.prefix}{workers}`;
  }

  private recordKey(workerId: string): string {
    return `${this.prefix}{workers}:${workerId}`;
  }

  private fleetKey(fleet: string): string {
    return `${this.prefix}{control}:fleet:${fleet}`;
  }

  private get pausedFleetsKey(): string {
    return `${this.prefix}{control}:paused-fleets`;
  }

  /** Puts the worker in the registry for the heartbeat timeout (30 s). */
  async announce(record: WorkerRecord): Promise<void> {
    await this.redis
      .multi()
      .set(this.recordKey(record.workerId), JSON.stringify(record), 'PX', HEALTH_CHECK.timeoutMs)
      .zadd(this.registryKey, record.announcedAt, record.workerId)
      .exec();
  }

  /** Takes a worker out of the registry at once (it has drained and exits). */
  async withdraw(workerId: string): Promise<void> {
    await this.redis.multi().del(this.recordKey(workerId)).zrem(this.registryKey, workerId).exec();
  }

  /** Workers heard from within the heartbeat timeout, by fleet and id. */
  async workers(now = Date.now()): Promise<WorkerRecord[]> {
    const key = this.registryKey;
    await this.redis.zremrangebyscore(key, '-inf', now - HEALTH_CHECK.timeoutMs);
    const ids = await this.redis.zrange(key, 0, -1);
    const records: WorkerRecord[] = [];
    for (const id of ids) {
      const raw = await this.redis.get(this.recordKey(id));
      if (raw) records.push(JSON.parse(raw) as WorkerRecord);
    }
    return records.sort((a, b) => `${a.gpuType}/${a.workerId}`.localeCompare(`${b.gpuType}/${b.workerId}`));
  }

  /** Pause or resume a whole fleet of a region; workers that join it later follow the order too. */
  async orderFleet(region: string, gpuType: string, order: 'pause' | 'resume'): Promise<void> {
    const fleet = `${region}:${gpuType}`;
    const key = this.fleetKey(fleet);
    if (order === 'pause') await this.redis.multi().set(key, 'paused').sadd(this.pausedFleetsKey, fleet).exec();
    else await this.redis.multi().del(key).srem(this.pausedFleetsKey, fleet).exec();
    await this.redis.publish(this.channel, `fleet:${region}:${gpuType}`);
  }

  /** Pause, resume or drain one worker. Resume also lifts a drain that has not happened yet. */
  async orderWorker(workerId: string, order: WorkerOrder): Promise<void> {
    const key = `${this.prefix}control:worker:${workerId}`;
    if (order === 'resume') await this.redis.del(key);
    else await this.redis.set(key, order === 'pause' ? 'paused' : 'drain', 'EX', WORKER_ORDER_TTL_S);
    await this.redis.publish(this.channel, `worker:${workerId}`);
  }

  /** The orders in force for a worker. */
  async ordersFor(workerId: string, region: string, gpuType: string): Promise<WorkerOrders> {
    const [fleet, worker] = await Promise.all([
      this.redis.get(this.fleetKey(`${region}:${gpuType}`)),
      this.redis.get(`${this.prefix}control:worker:${workerId}`),
    ]);
    return {
      pausedBy: worker === 'paused' ? 'worker' : fleet === 'paused' ? 'fleet' : undefined,
      drain: worker === 'drain',
    };
  }

  /** Fleets an operator has paused, as `<region>:<gpuType>`. */
  async pausedFleets(): Promise<string[]> {
    return (await this.redis.smembers(this.pausedFleetsKey)).sort();
  }

  async reportForReplacement(report: ReplacementReport): Promise<void> {
    await this.redis.hset(`${this.prefix}replacements`, report.workerId, JSON.stringify(report));
  }

  async replacements(): Promise<ReplacementReport[]> {
    const all = await this.redis.hgetall(`${this.prefix}replacements`);
    return Object.values(all)
      .map((raw) => JSON.parse(raw) as ReplacementReport)
      .sort((a, b) => a.at - b.at);
  }

  /**
   * Calls `onChange` whenever an operator changes an order, over a connection of its own (a subscribed connection
   * can do nothing else). Returns the function that unsubscribes and closes it.
   */
  async watch(onChange: () => void): Promise<() => Promise<void>> {
    const subscriber = this.redis.duplicate();
    subscriber.on('error', () => undefined); // the caller's periodic read covers a lost subscription
    subscriber.on('message', (channel: string) => {
      if (channel === this.channel) onChange();
    });
    await subscriber.subscribe(this.channel);
    return async () => {
      await subscriber.quit().catch(() => subscriber.disconnect());
    };
  }
}
