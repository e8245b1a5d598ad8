// The scale driver (issue 13): what turns the autoscaler's decisions into GPU workers. The autoscaler workflow asks it
// how many workers each fleet has and sets how many it wants; the driver starts new workers (which warm up before they
// poll) and drains the ones it removes (they finish their requests, then exit), so no request is lost to a scale
// event. The local driver is this Redis record of desired replicas per fleet, which the stack launcher reconciles with
// the GPU worker processes it runs (infra/stack-autoscale.ts); a Kubernetes driver would set a Deployment's replicas.
import type { RedisClient } from './redis';
import { GPU_TYPES, isGpuType, type GpuType } from '../core/gpu';

export interface ScaleDriver {
  /** Workers the driver runs (or was last asked to run) per fleet of the region; a fleet it has no figure for is absent. */
  replicas(region: string): Promise<Partial<Record<GpuType, number>>>;
  /** Asks for `replicas` workers of the fleet. */
  setReplicas(region: string, gpuType: GpuType, replicas: number): Promise<void>;
}

export function desiredReplicasKey(prefix: string, region: string): string {
  return `${prefix}autoscale:desired:${region}`;
}

/** The local driver's record: one hash per region, fleet -> desired workers. */
export class RedisDesiredReplicas implements ScaleDriver {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async replicas(region: string): Promise<Partial<Record<GpuType, number>>> {
    const raw = await this.redis.hgetall(desiredReplicasKey(this.prefix, region));
    const out: Partial<Record<GpuType, number>> = {};
    for (const [gpuType, value] of Object.entries(raw)) {
      const n = Number(value);
      if (isGpuType(gpuType) && Number.isInteger(n) && n >= 0) out[gpuType] = n;
    }
    return out;
  }

  async setReplicas(region: string, gpuType: GpuType, replicas: number): Promise<void> {
    if (!GPU_TYPES.includes(gpuType) || !Number.isInteger(replicas) || replicas < 0) {
      throw new RangeError(`Invalid desired replicas ${gpuType}=${replicas}`);
    }
    await this.redis.hset(desiredReplicasKey(this.prefix, region), gpuType, String(replicas));
  }
}
