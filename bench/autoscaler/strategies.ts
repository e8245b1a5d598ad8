// The three ways of sizing the fleets that the autoscaler day compares, on the same arrivals:
// - static-peak: each fleet fixed at what the peak hour needs at 70% duty (at least its tier minimums); this size
//   is also every fleet's peakReplicas, what the schedule's shares are of.
// - schedule: the time-of-day pre-scaling alone, max(fleet minimum, ceil(share x peakReplicas)), nothing reactive.
// - policy: the real decideScale (core/autoscale.ts) with SEED_001_POLICY every 15 s of simulated time, fed the
//   signals a live fleet reports (queues, waits, duty cycle, busy GPUs), so it forecasts as the live autoscaler does:
//   the busy GPUs carried along the seed's day profile 10 minutes ahead (core/autoscale-forecast.ts), blind to the
//   spike; its `to` is applied per fleet.
// - policy-no-forecast: the same without a forecast, so the policy falls back on the seed's fixed schedule as its
//   floor (what a deployment with no traffic forecast runs). The schedule keeps every fleet at 100% of its peak size
//   from 10:00 to 22:00; this shows what that costs and buys.
// Cold start and the forecast are modelling assumptions, documented where they are defined.
import { decideScale, SCALE_UP_CONDITIONS, type AutoscaleMemory, type FleetDecision } from '../../core/autoscale';
import { fleetMinimum, scheduledShare, SEED_001_POLICY, type AutoscalePolicy } from '../../core/autoscale-policy';
import type { GpuType } from '../../core/gpu';
import { modelWeightsGb } from '../../core/routing';
import type { Fleet } from './fleet';
import { curveQps, DAY_START_MS, PEAK_QPS, type FleetLoad } from './traffic';

export const STRATEGIES = ['static-peak', 'schedule', 'policy', 'policy-no-forecast'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** Duty cycle the static fleet is sized for at the peak hour (headroom for Poisson bursts and relax). */
export const STATIC_TARGET_UTILIZATION = 0.7;
/** Assumption: a cloud GPU VM or pod takes 90 s from the scale-up decision to a running worker process. */
export const PROVISION_MS = 90_000;
/** Assumption: a new worker reads its fleet's models' weights at 2 GB/s (local NVMe or a warm object cache). */
export const WEIGHTS_GB_PER_S = 2;
/** How far ahead the policy's forecast looks (its own setting), and the fleets' start size at 00:00. */
export const FORECAST_AHEAD_MS = SEED_001_POLICY.forecast.aheadMs;

/** Workers each fleet needs at the peak hour (spike excluded) at the target duty, at least its tier minimums. */
export function staticPeakSizes(loads: ReadonlyMap<GpuType, FleetLoad>, policy: AutoscalePolicy): Map<GpuType, number> {
  return new Map(
    [...loads].map(([g, load]) => {
      const gpuSecondsPerS = PEAK_QPS * load.share * load.meanServiceS;
      return [g, Math.max(fleetMinimum(policy, g), Math.ceil(gpuSecondsPerS / STATIC_TARGET_UTILIZATION))];
    }),
  );
}

/** A worker's cold start: provisioning, then loading the weights of every model the fleet serves. */
export function coldStartMs(load: FleetLoad): number {
  const weightsGb = load.models.reduce((s, m) => s + modelWeightsGb(m), 0);
  return Math.round(PROVISION_MS + (weightsGb / WEIGHTS_GB_PER_S) * 1000);
}

/**
 * GPU-equivalents the curve's traffic FORECAST_AHEAD_MS from now needs on the fleet (100% duty): the fleets' size at
 * the start of the window. From then on the policy forecasts as it does live, from the fleet's busy GPUs.
 */
export function curveDemand(load: FleetLoad, msOfDay: number): number {
  return curveQps(msOfDay + FORECAST_AHEAD_MS) * load.share * load.meanServiceS;
}

/** The schedule strategy's size of a fleet at a time of day (also the policy's floor). */
export function scheduledSize(policy: AutoscalePolicy, gpuType: GpuType, peak: number, msOfDay: number): number {
  return Math.max(fleetMinimum(policy, gpuType), Math.ceil(scheduledShare(policy, DAY_START_MS + msOfDay) * peak));
}

/** Decides sizes every tick; `fleets` are in the order the run built them. */
export interface Controller {
  readonly name: StrategyName;
  initialSize(gpuType: GpuType, msOfDay: number): number;
  tick(msOfDay: number, fleets: readonly Fleet[]): void;
  /** Scale-ups and downs by cause, per fleet (the policy's fired conditions, or its floor). */
  readonly causes: Map<GpuType, Record<string, number>>;
}

export interface ControllerContext {
  readonly policy: AutoscalePolicy;
  readonly peak: ReadonlyMap<GpuType, number>;
  readonly loads: ReadonlyMap<GpuType, FleetLoad>;
}

function count(causes: Map<GpuType, Record<string, number>>, g: GpuType, cause: string): void {
  const c = causes.get(g) ?? {};
  c[cause] = (c[cause] ?? 0) + 1;
  causes.set(g, c);
}

function causeOf(d: FleetDecision): string {
  const ups = d.fired.filter((x) => (SCALE_UP_CONDITIONS as readonly string[]).includes(x));
  if (d.action === 'up') return ups.length > 0 ? `up:${ups.join('+')}` : 'up:floor';
  return `down:${d.fired.filter((x) => !ups.includes(x)).join('+')}`;
}

export function makeController(name: StrategyName, ctx: ControllerContext): Controller {
  const peakOf = (g: GpuType): number => ctx.peak.get(g) ?? 0;
  const causes = new Map<GpuType, Record<string, number>>();
  if (name === 'static-peak') return { name, causes, initialSize: peakOf, tick: () => undefined };
  const sized = (g: GpuType, ms: number): number => scheduledSize(ctx.policy, g, peakOf(g), ms);
  if (name === 'schedule') {
    return {
      name,
      causes,
      initialSize: sized,
      tick: (ms, fleets) => fleets.forEach((f) => f.scaleTo(sized(f.gpuType, ms), ms)),
    };
  }
  let memory: AutoscaleMemory = {};
  const forecast = name === 'policy';
  // At 00:00 the fleets start at the size the policy would keep them at: the forecast's need, or the schedule's.
  const initialSize = (g: GpuType, ms: number): number => {
    const load = ctx.loads.get(g);
    if (!forecast || !load) return sized(g, ms);
    return Math.max(fleetMinimum(ctx.policy, g), Math.ceil(curveDemand(load, ms) / STATIC_TARGET_UTILIZATION));
  };
  return {
    name,
    causes,
    initialSize,
    tick(ms, fleets) {
      const signals = fleets.map((f) => {
        return f.signals(ms, peakOf(f.gpuType), forecast);
      });
      const result = decideScale(ctx.policy, signals, memory, DAY_START_MS + ms);
      memory = result.memory;
      for (const d of result.decisions) {
        if (d.to === d.from) continue;
        fleets.find((f) => f.gpuType === d.gpuType)?.scaleTo(d.to, ms);
        count(causes, d.gpuType, causeOf(d));
      }
    },
  };
}

/** Steps of a fleet that broke a cooldown: two ups closer than cooldownUp, or a down closer than cooldownDown. */
export function stepsInsideCooldown(
  steps: readonly { atMs: number; from: number; to: number }[],
  policy: Pick<AutoscalePolicy, 'constraints'>,
): number {
  let broken = 0;
  for (let i = 1; i < steps.length; i++) {
    const prev = steps[i - 1]!;
    const cur = steps[i]!;
    const gap = cur.atMs - prev.atMs;
    const up = (s: typeof cur): boolean => s.to > s.from;
    if (up(cur) && up(prev) && gap < policy.constraints.cooldownUpMs) broken++;
    else if (!up(cur) && gap < policy.constraints.cooldownDownMs) broken++;
  }
  return broken;
}
