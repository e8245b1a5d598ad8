// The fleets' queue samples, shared through Redis: the region's control worker writes each GPU queue's backlog by
// priority and its drain rate every sample (workers/region-metrics.ts), and every gateway reads them for admission by
// capacity (core/capacity.ts). A sample expires after 30 s, so a stopped sampler never leaves gateways shedding on
// stale figures: no sample means no capacity check.
//
// Key, under the deployment prefix: `capacity:<task queue>` -> JSON QueueSnapshot.
import type { RedisClient } from './redis';
import type { QueueSnapshot } from '../core/capacity';

const SAMPLE_TTL_MS = 30_000;

export class CapacityStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async publish(taskQueue: string, snapshot: QueueSnapshot): Promise<void> {
    await this.redis.set(`${this.prefix}capacity:${taskQueue}`, JSON.stringify(snapshot), 'PX', SAMPLE_TTL_MS);
  }

  async read(taskQueue: string): Promise<QueueSnapshot | undefined> {
    const raw = await this.redis.get(`${this.prefix}capacity:${taskQueue}`);
    return raw === null ? undefined : (JSON.parse(raw) as QueueSnapshot);
  }
}
