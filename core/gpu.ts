// GPU fleet types and their hardware figures (seed 001, "Hardware Comparison"). Pure data: imported by the
// workflow (routing), the simulated backend (latency model) and the worker entry points (task queues).
import type { Tier } from './tiers';

export const GPU_TYPES = ['a10g', 'l4', 'a100', 'a100-80gb', 'h100'] as const;
export type GpuType = (typeof GPU_TYPES)[number];

export interface GpuSpec {
  /** Display name as in the seed's hardware table. */
  readonly name: string;
  /** Device memory, GiB. */
  readonly vramGb: number;
  /** Dense FP16 tensor throughput, TFLOPS. */
  readonly fp16Tflops: number;
  /** On-demand cost, USD per hour. */
  readonly costPerHour: number;
}

export const GPU_SPECS: Readonly<Record<GpuType, GpuSpec>> = {
  a10g: { name: 'A10G', vramGb: 24, fp16Tflops: 125, costPerHour: 1.0 },
  l4: { name: 'L4', vramGb: 24, fp16Tflops: 120, costPerHour: 0.8 },
  a100: { name: 'A100 40GB', vramGb: 40, fp16Tflops: 312, costPerHour: 3.0 },
  'a100-80gb': { name: 'A100 80GB', vramGb: 80, fp16Tflops: 312, costPerHour: 4.5 },
  h100: { name: 'H100', vramGb: 80, fp16Tflops: 989, costPerHour: 6.0 },
};

export function isGpuType(value: string): value is GpuType {
  return (GPU_TYPES as readonly string[]).includes(value);
}

/** Default region of a single-region deployment and of the local stack. */
export const DEFAULT_REGION = 'us-west';

const REGION_PATTERN = /^[a-z][a-z0-9-]{1,30}$/;

export function assertRegion(region: string): string {
  if (!REGION_PATTERN.test(region)) {
    throw new TypeError(`Invalid region ${JSON.stringify(region)}: expected lower-case letters, digits and dashes`);
  }
  return region;
}

/** Task queue that a GPU fleet of one type polls in one region, e.g. `us-west.gpu-a10g`. */
export function gpuTaskQueue(region: string, gpuType: GpuType): string {
  return `${assertRegion(region)}.gpu-${gpuType}`;
}

const RELAX_LANE_SUFFIX = '.relax';

/**
 * The relax lane of a GPU fleet, e.g. `us-west.gpu-a10g.relax`: relax requests wait here, apart from turbo and fast,
 * and the fleet's workers take them only on idle capacity (seed 004; workers/relax-lane.ts).
 */
export function relaxTaskQueue(region: string, gpuType: GpuType): string {
  return `${gpuTaskQueue(region, gpuType)}${RELAX_LANE_SUFFIX}`;
}

/** Whether a task queue is a fleet's relax lane (its work is background work on the device). */
export function isRelaxLane(taskQueue: string): boolean {
  return taskQueue.endsWith(RELAX_LANE_SUFFIX);
}

/** Both queues of a fleet in a region: its own (turbo, fast) and its relax lane. */
export function fleetTaskQueues(region: string, gpuType: GpuType): [string, string] {
  return [gpuTaskQueue(region, gpuType), relaxTaskQueue(region, gpuType)];
}

/** The queue a request of `tier` waits in for a GPU of the fleet: relax has its own lane, turbo and fast share one. */
export function gpuTaskQueueForTier(region: string, gpuType: GpuType, tier: Tier): string {
  return tier === 'relax' ? relaxTaskQueue(region, gpuType) : gpuTaskQueue(region, gpuType);
}

/** Task queue of the control workers (workflows, safety, storage, notification) in one region. */
export function controlTaskQueue(region: string): string {
  return `${assertRegion(region)}.control`;
}
