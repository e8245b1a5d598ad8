// Honest expectations (issue 11): what a request will take on the GPU fleet it routes to, what that costs, and when it
// should be done, told to the client in `accepted` and refreshed while it waits. Service time comes from the latency
// model the simulated GPU backend runs (inference/simulated.ts imports it from here), so the estimate and the
// simulated fleet agree; prices are seed 001's on-demand figures (core/gpu.ts). Pure: the gateway calls it.
//
// Relax is priced on demand too. Seed 001 says spot instances for relax bring the whole fleet from ~$162,000 to
// ~$120,000 a month, but it gives no spot price per GPU, and here relax runs in a lane on the same fleets' idle
// capacity (core/gpu.ts relaxTaskQueue), not on instances of its own: the GPU-seconds it uses are on-demand ones.
import { expectedWaitMs, type QueueSnapshot } from './capacity';
import { GPU_SPECS, gpuTaskQueueForTier, type GpuType } from './gpu';
import { MODELS, type ModelName } from './models';
import { TIER_PRIORITY_KEY, TIERS, type Tier } from './tiers';

/** Fraction of a GPU's peak FP16 throughput a diffusion step sustains (memory-bound attention, launch gaps). */
export const DEFAULT_STEP_UTILIZATION = 0.35;

/** What sets the work of one denoising step. */
export interface StepWork {
  readonly model: ModelName;
  readonly width: number;
  readonly height: number;
  readonly numImages: number;
}

/**
 * Modelled time of one denoising step, milliseconds: stepTflopAt1Mpx x megapixels x images / (GPU FP16 TFLOPS x
 * utilization). SDXL 1024x1024 on an A10G: 12 x 1.05 / (125 x 0.35) = 0.29 s per step, 8.6 s for 30 steps.
 */
export function modelledStepMs(job: StepWork, gpuType: GpuType, utilization = DEFAULT_STEP_UTILIZATION): number {
  const megapixels = (job.width * job.height) / 1_000_000;
  const tflop = MODELS[job.model].stepTflopAt1Mpx * megapixels * job.numImages;
  return (tflop / (GPU_SPECS[gpuType].fp16Tflops * utilization)) * 1000;
}

/**
 * The VAE decode of the batch, in denoising steps of the same request: it works on the same pixels and images, and
 * on SDXL at 1024x1024 it takes about as long as two UNet steps with guidance. The denoising loop alone undercounts.
 */
export const DECODE_STEP_EQUIVALENTS = 2;
/** Work of every request that does not scale with its pixels: prompt encoding, scheduler set-up, copies off the GPU. */
export const FIXED_OVERHEAD_MS = 150;

/** How long the request holds a GPU of the fleet, ms: its steps, the decode, and the fixed overhead. */
export function serviceMs(job: StepWork & { readonly steps: number }, gpuType: GpuType): number {
  return (job.steps + DECODE_STEP_EQUIVALENTS) * modelledStepMs(job, gpuType) + FIXED_OVERHEAD_MS;
}

/** What a GPU of the fleet costs per second, USD (seed 001's on-demand price per hour). */
export function pricePerSecondUsd(gpuType: GpuType): number {
  return GPU_SPECS[gpuType].costPerHour / 3600;
}

/** What `accepted` tells the client before any work starts. */
export interface RequestEstimate {
  /** The fleet the request routes to (the routing matrix's first choice). */
  readonly gpuType: GpuType;
  /** GPU time the request will use, seconds (hundredths). */
  readonly gpuSeconds: number;
  /** gpuSeconds at the fleet's price, USD (millionths). */
  readonly costUsd: number;
  /** Expected time to completion from now, ms (tenths of a second, rounded up); absent when the wait is unknown. */
  readonly etaMs?: number;
}

/** Milliseconds rounded up to a tenth of a second: an ETA that errs, errs late. */
export function roundEtaMs(ms: number): number {
  return Math.ceil(ms / 100) * 100;
}

/**
 * The estimate of a request routed to `gpuType`. `queue` is the latest sample of the queue the request waits in (its
 * tier's: core/gpu.ts gpuTaskQueueForTier); without one, or when that queue has work and drains none, the wait and so
 * the ETA are unknown and `etaMs` is left out rather than guessed.
 */
export function estimateRequest(
  job: StepWork & { readonly steps: number; readonly tier: Tier },
  gpuType: GpuType,
  queue: QueueSnapshot | undefined,
): RequestEstimate {
  const service = serviceMs(job, gpuType);
  const gpuSeconds = Math.max(0.01, Math.round(service / 10) / 100);
  // From the rounded seconds, so that a client multiplying them by the published price gets the same figure.
  const costUsd = Math.round(gpuSeconds * pricePerSecondUsd(gpuType) * 1e6) / 1e6;
  const wait = queue ? expectedWaitMs(queue, job.tier) : undefined;
  return { gpuType, gpuSeconds, costUsd, ...(wait !== undefined ? { etaMs: roundEtaMs(wait + service) } : {}) };
}

/**
 * The tiers whose waiting requests go before one of `tier` in its queue: those of a higher priority that wait in the
 * same task queue (turbo before fast; relax has a lane of its own, where nothing outranks it).
 */
export function tiersAheadOf(region: string, gpuType: GpuType, tier: Tier): Tier[] {
  const queue = gpuTaskQueueForTier(region, gpuType, tier);
  return TIERS.filter(
    (t) => TIER_PRIORITY_KEY[t] < TIER_PRIORITY_KEY[tier] && gpuTaskQueueForTier(region, gpuType, t) === queue,
  );
}

/**
 * ETA of a request `position`-th in its queue (1 = next), ms: the fleet takes `dispatchPerSecond` requests off the
 * queue, so its turn comes after `position` of them, then it runs for `service` ms. Unknown (undefined) without a
 * sample or while the queue drains nothing.
 */
export function queuedEtaMs(position: number, queue: QueueSnapshot | undefined, service: number): number | undefined {
  if (!queue || !(queue.dispatchPerSecond > 0)) return undefined;
  return roundEtaMs((position / queue.dispatchPerSecond) * 1000 + service);
}

/** A waiting request's place, as its client is told it. */
export interface QueueStanding {
  readonly queuePosition: number;
  readonly etaMs?: number;
}

/**
 * Whether `next` is news after `previous`: a new position, an ETA appearing or disappearing, or one that moved by a
 * second and a tenth of itself. A drain rate that wobbles from sample to sample does not make a frame every time.
 */
export function standingChanged(previous: QueueStanding | undefined, next: QueueStanding): boolean {
  if (!previous || previous.queuePosition !== next.queuePosition) return true;
  if (previous.etaMs === undefined || next.etaMs === undefined) return previous.etaMs !== next.etaMs;
  return Math.abs(next.etaMs - previous.etaMs) >= Math.max(1_000, previous.etaMs * 0.1);
}
