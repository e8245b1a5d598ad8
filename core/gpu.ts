// GPU fleet types and their hardware figures (seed 001, "Hardware Comparison"). Pure data: imported by the
// workflow (routing), the simulated backend (latency model) and the worker entry points (task queues).

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

/** Task queue of the control workers (workflows, safety, storage, notification) in one region. */
export function controlTaskQueue(region: string): string {
  return `${assertRegion(region)}.control`;
}
