// The capacity planner's arithmetic (issue 13, item 4; `npm run plan`): from a daily volume, a peak rate and a number
// of regions, the GPUs of each fleet per region and what they cost a month, on the same service-time model and request
// mix as the day simulation (bench/autoscaler/traffic.ts: core/estimate.ts per GPU type, routed by the routing matrix).
// Two fleets are priced: one sized for the peak all day (static), and one that follows the day's curve hour by hour at
// the same duty (what the autoscaler approaches; the simulation's policy came within a few percent of it at 60 QPS).
import { fleetMinimum, SEED_001_POLICY, type AutoscalePolicy } from '../../core/autoscale-policy';
import { GPU_SPECS, type GpuType } from '../../core/gpu';
import { STATIC_TARGET_UTILIZATION } from '../autoscaler/strategies';
import { curveQps, DAY_MS, fleetLoads, HOUR_MS, PEAK_QPS, type FleetLoad } from '../autoscaler/traffic';

export interface PlanInput {
  readonly dailyImages: number;
  /** Peak requests per second; absent: the seed's curve shape scaled to the daily volume. */
  readonly peakQps?: number;
  readonly regions: number;
  /** Duty the fleets are sized for at the peak. @default 0.7 */
  readonly utilization?: number;
  readonly policy?: AutoscalePolicy;
}

export interface FleetPlan {
  readonly gpuType: GpuType;
  readonly gpusPerRegion: number;
  readonly gpus: number;
  /** Per region, to carry an equal share of one lost region's traffic as well (N-1). */
  readonly gpusPerRegionSurvivingOneLoss: number;
  readonly staticUsdPerMonth: number;
  readonly followingUsdPerMonth: number;
}

export interface Plan {
  readonly dailyImages: number;
  readonly peakQps: number;
  /** The peak the seed's curve shape gives for this daily volume (to compare with a peak given). */
  readonly curvePeakQps: number;
  readonly regions: number;
  readonly fleets: readonly FleetPlan[];
  readonly gpus: number;
  readonly staticUsdPerMonth: number;
  readonly followingUsdPerMonth: number;
}

const HOURS_PER_MONTH = 730;

/** Mean of the seed's daily curve over its peak: a day of N images at this shape peaks at N / 86 400 / ratio. */
export function curveMeanOverPeak(): number {
  let sum = 0;
  const samples = 24 * 60;
  for (let i = 0; i < samples; i++) sum += curveQps((i * DAY_MS) / samples);
  return sum / samples / PEAK_QPS;
}

function fleetPlan(
  gpuType: GpuType,
  load: FleetLoad,
  input: Required<Omit<PlanInput, 'peakQps'>> & { peakQps: number; meanQps: number },
): FleetPlan {
  const util = input.utilization;
  const perRegionPeak = (input.peakQps * load.share * load.meanServiceS) / util / input.regions;
  const minimum = fleetMinimum(input.policy, gpuType);
  const gpusPerRegion = Math.max(minimum, Math.ceil(perRegionPeak));
  const surviving = input.regions > 1 ? (perRegionPeak * input.regions) / (input.regions - 1) : perRegionPeak;
  const price = GPU_SPECS[gpuType].costPerHour;
  // Hour by hour along the curve, scaled to the daily volume: the GPUs each hour needs at the same duty.
  let followingGpuHours = 0;
  for (let h = 0; h < 24; h++) {
    const qps = (curveQps(h * HOUR_MS + HOUR_MS / 2) / (curveMeanOverPeak() * PEAK_QPS)) * input.meanQps;
    const need = (qps * load.share * load.meanServiceS) / util / input.regions;
    followingGpuHours += Math.max(minimum, Math.ceil(need)) * input.regions;
  }
  return {
    gpuType,
    gpusPerRegion,
    gpus: gpusPerRegion * input.regions,
    gpusPerRegionSurvivingOneLoss: Math.max(minimum, Math.ceil(surviving)),
    staticUsdPerMonth: gpusPerRegion * input.regions * price * HOURS_PER_MONTH,
    followingUsdPerMonth: (followingGpuHours / 24) * price * HOURS_PER_MONTH,
  };
}

export function plan(input: PlanInput): Plan {
  const meanQps = input.dailyImages / 86_400;
  const curvePeakQps = meanQps / curveMeanOverPeak();
  const peakQps = input.peakQps ?? curvePeakQps;
  const resolved = {
    dailyImages: input.dailyImages,
    regions: input.regions,
    utilization: input.utilization ?? STATIC_TARGET_UTILIZATION,
    policy: input.policy ?? SEED_001_POLICY,
    peakQps,
    meanQps,
  };
  const fleets = [...fleetLoads()].map(([gpuType, load]) => fleetPlan(gpuType, load, resolved));
  const sum = (f: (x: FleetPlan) => number): number => fleets.reduce((s, x) => s + f(x), 0);
  return {
    dailyImages: input.dailyImages,
    peakQps,
    curvePeakQps,
    regions: input.regions,
    fleets,
    gpus: sum((f) => f.gpus),
    staticUsdPerMonth: sum((f) => f.staticUsdPerMonth),
    followingUsdPerMonth: sum((f) => f.followingUsdPerMonth),
  };
}
