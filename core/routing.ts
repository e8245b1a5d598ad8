// The workload routing matrix of seed 001 as a pure function: which GPU fleet serves a request. Deterministic and
// free of I/O because the workflow calls it (a change here changes workflow decisions: keep rows stable, and
// version the workflow with `patched()` when a row changes for in-flight requests).
import type { GpuType } from './gpu';
import { GPU_SPECS } from './gpu';
import { MODELS, type ModelName } from './models';
import type { Tier } from './tiers';

/** One row of the seed's matrix; `rule` is stable and shows up in logs, search attributes and tests. */
export type RoutingRule =
  | 'turbo-tier'
  | 'high-res'
  | 'batch'
  | 'sd3-flux'
  | 'sdxl-multi-controlnet'
  | 'sdxl-controlnet'
  | 'sdxl-lora'
  | 'sdxl-standard';

export interface RoutingInput {
  readonly model: ModelName;
  readonly tier: Tier;
  readonly width: number;
  readonly height: number;
  readonly numImages: number;
  readonly loras: readonly unknown[];
  readonly controlnets: readonly unknown[];
}

export interface RoutingDecision {
  readonly gpuType: GpuType;
  /** Fleets the matrix also allows, in order of preference, for failover. */
  readonly alternatives: readonly GpuType[];
  readonly rule: RoutingRule;
  /** Estimated device memory the request needs, GiB. */
  readonly estimatedVramGb: number;
}

/** "High-res (2K+)": either side at least this many pixels. */
export const HIGH_RES_MIN_SIDE = 2048;
/** "Batch generation": this many images or more in one request. */
export const BATCH_MIN_IMAGES = 2;
/** Extra memory of one ControlNet at default resolution, GiB. */
const CONTROLNET_VRAM_GB = 2.5;
const LORA_VRAM_GB = 0.3;

/** A model's weights, resident on a GPU while it serves the model: 65% of its catalogue figure, GiB. */
export function modelWeightsGb(model: ModelName): number {
  return MODELS[model].vramGb * 0.65;
}

/**
 * Device memory one request needs, GiB: the model's weights, plus activations (the other 35% of the catalogue figure
 * at the default size) growing with pixel count over the default resolution and with images, plus adapters. Routing
 * uses it to pick a fleet, and the simulated GPU to model its memory (inference/simulated-memory.ts).
 */
export function estimateVramGb(input: Omit<RoutingInput, 'tier'>): number {
  const spec = MODELS[input.model];
  const pixelRatio = (input.width * input.height) / (spec.defaultWidth * spec.defaultHeight);
  const activations = spec.vramGb * 0.35 * Math.max(1, pixelRatio) * input.numImages;
  const weights = modelWeightsGb(input.model);
  return weights + activations + input.controlnets.length * CONTROLNET_VRAM_GB + input.loras.length * LORA_VRAM_GB;
}

/**
 * Routes a request to a GPU fleet. Rows are checked from the most demanding down, so a request that matches
 * several rows gets the fleet of the strongest one (a turbo-tier Flux request goes to H100).
 */
export function routeToGpu(input: RoutingInput): RoutingDecision {
  const vram = estimateVramGb(input);
  const decide = (rule: RoutingRule, gpuType: GpuType, alternatives: GpuType[]): RoutingDecision => ({
    rule,
    gpuType,
    alternatives,
    estimatedVramGb: Math.round(vram * 10) / 10,
  });
  const family = MODELS[input.model].family;

  if (input.tier === 'turbo') return decide('turbo-tier', 'h100', ['a100-80gb', 'a100']);
  if (Math.max(input.width, input.height) >= HIGH_RES_MIN_SIDE)
    return decide('high-res', 'a100', ['h100', 'a100-80gb']);
  if (input.numImages >= BATCH_MIN_IMAGES) return decide('batch', 'a100-80gb', ['h100', 'a100']);
  if (family === 'sd3' || family === 'flux') return decide('sd3-flux', 'a100', ['a100-80gb', 'h100']);
  if (input.controlnets.length >= 2) return decide('sdxl-multi-controlnet', 'a100', ['a100-80gb', 'h100']);
  if (input.controlnets.length === 1) {
    // "A10G/A100: may need more VRAM" - stay on the cheap fleet while the request fits in its memory.
    return vram <= GPU_SPECS.a10g.vramGb * 0.9
      ? decide('sdxl-controlnet', 'a10g', ['l4', 'a100'])
      : decide('sdxl-controlnet', 'a100', ['a100-80gb']);
  }
  if (input.loras.length > 0) return decide('sdxl-lora', 'a10g', ['l4', 'a100']);
  return decide('sdxl-standard', 'a10g', ['l4', 'a100']);
}
