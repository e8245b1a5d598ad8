// Who is alive in each region, for region health (issue 12; gateway/region-health.ts): each region's control worker
// beats while its Temporal Worker polls, and each gateway while it serves. A beat counts for seed 001's 30 s heartbeat
// timeout, so a region whose processes all died is seen dead within 30 s of their last beat. The GPU workers are in
// the worker registry already (runtime/worker-control.ts), with their region.
//
// Keys, under the deployment prefix: `region-beats:<region>:<role>` sorted set: process id -> last beat (ms).
import type { RedisClient } from './redis';
import { regionHealth, type RegionHealth } from '../core/region-health';
import { HEALTH_CHECK } from '../core/worker-health';
import type { WorkerControlStore } from './worker-control';

export type BeatRole = 'control' | 'gateway';

/** How often a process beats, ms: six beats per heartbeat timeout. */
export const REGION_BEAT_INTERVAL_MS = 5_000;

export class RegionBeats {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private key(region: string, role: BeatRole): string {
    return `${this.prefix}region-beats:${region}:${role}`;
  }

  async beat(region: string, role: BeatRole, id: string, now = Date.now()): Promise<void> {
    const key = this.key(region, role);
    await this.redis
      .multi()
      .zadd(key, now, id)
      .pexpire(key, 2 * HEALTH_CHECK.timeoutMs)
      .exec();
  }

  /** A process that stops (drains, shuts down) leaves at once rather than after the timeout. */
  async leave(region: string, role: BeatRole, id: string): Promise<void> {
    await this.redis.zrem(this.key(region, role), id);
  }

  /** Processes of `role` in `region` heard from within the heartbeat timeout. */
  async alive(region: string, role: BeatRole, now = Date.now()): Promise<number> {
    const key = this.key(region, role);
    return this.redis.zcount(key, now - HEALTH_CHECK.timeoutMs, '+inf');
  }

  /**
   * Beats every REGION_BEAT_INTERVAL_MS while `serving()` says so; failures are left to the next beat (`onError`).
   * Returns the function that stops beating and leaves.
   */
  start(
    region: string,
    role: BeatRole,
    id: string,
    serving: () => boolean,
    onError: (err: unknown) => void,
  ): () => Promise<void> {
    const tick = (): void => {
      if (serving()) this.beat(region, role, id).catch(onError);
    };
    tick();
    const timer = setInterval(tick, REGION_BEAT_INTERVAL_MS);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await this.leave(region, role, id).catch(onError);
    };
  }
}

/** The health of each of `regions` from their beats and the GPU worker registry (core/region-health.ts). */
export async function readRegionHealth(
  beats: RegionBeats,
  registry: Pick<WorkerControlStore, 'workers'>,
  regions: readonly string[],
): Promise<RegionHealth[]> {
  const workers = await registry.workers();
  return Promise.all(
    regions.map(async (region) => {
      const [controlWorkers, gateways] = await Promise.all([
        beats.alive(region, 'control'),
        beats.alive(region, 'gateway'),
      ]);
      const gpuWorkers: Record<string, { live: number; ready: number }> = {};
      for (const w of workers.filter((w) => w.region === region)) {
        const fleet = (gpuWorkers[w.gpuType] ??= { live: 0, ready: 0 });
        fleet.live++;
        if (w.ready && w.state === 'serving') fleet.ready++;
      }
      return regionHealth(region, { controlWorkers, gateways, gpuWorkers });
    }),
  );
}
