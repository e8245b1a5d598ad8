// The day's traffic of the autoscaler simulation (issue 13): seed 001's daily QPS curve, the 10x spike, and the
// request mix, with Poisson arrivals from a seeded generator so that every strategy sees the very same requests.
// Routing and service times come from the real code (core/routing.ts routeToGpu, core/estimate.ts serviceMs),
// looked up once per (variant, tier) rather than per request: the day is 2.7 million requests.
//
// The mix is a modelling choice, made once before any result was looked at:
// - Shares by model family are seed 001's (sdxl 60%, sd3 20%, flux 15%, other 5%: tiny-sd stands for "other").
// - Tiers: turbo 10%, fast 60%, relax 30% (the split; no seed gives one).
// - Sizes and steps: seed 001 runs 60 QPS on 100 GPUs (60 A10G/L4, 25 A100, 15 H100), about 1 to 1.5 GPU-seconds
//   per request at 70% duty. With this repo's latency model SDXL 1024x1024 at 30 steps holds an A10G ~9.4 s and
//   Flux 1024x1024 at 28 steps an A100 ~10.5 s, so the seed's fleet only serves its QPS if most traffic is
//   distilled few-step work. Hence: SDXL mostly SDXL-Turbo at 4 steps, a fifth at 768x768 with 20 steps; SD3 and
//   Flux mostly 4-step distilled runs (as SD3.5 Large Turbo or FLUX.1 schnell would be) at 1024x1024, with a
//   minority at full steps. The static fleet this gives (printed) stays under the policy's 200 workers; the A100
//   fleet comes out larger than the seed's 25 because SD3 and Flux are heavier in this repo's model than in the seed.
import { SEED_001_DAILY_QPS } from '../../core/autoscale-forecast';
import { routeToGpu } from '../../core/routing';
import { serviceMs } from '../../core/estimate';
import type { GpuType } from '../../core/gpu';
import type { ModelName } from '../../core/models';
import { TIERS, type Tier } from '../../core/tiers';
import { seededRandom } from '../load/mix';

export const HOUR_MS = 3_600_000;
export const MINUTE_MS = 60_000;
export const DAY_MS = 24 * HOUR_MS;
/** Midnight UTC of the simulated day: the schedule reads the time of day from the epoch. */
export const DAY_START_MS = Date.UTC(2026, 0, 1);

/** Seed 001's "typical day" (core/autoscale-forecast.ts, the live forecast's default shape too). */
export const DAILY_QPS = SEED_001_DAILY_QPS;

/** The spike the autoscaler is not told about: 10x the curve for 2 minutes from 16:00 UTC. */
export const SPIKE = { startMs: 16 * HOUR_MS, durationMs: 2 * MINUTE_MS, multiplier: 10 } as const;

/** The curve's QPS at `ms` after midnight (wrapping at 24 h), without the spike. */
export function curveQps(ms: number): number {
  const hour = (((ms % DAY_MS) + DAY_MS) % DAY_MS) / HOUR_MS;
  for (let i = 1; i < DAILY_QPS.length; i++) {
    const [h1, q1] = DAILY_QPS[i] as readonly [number, number];
    const [h0, q0] = DAILY_QPS[i - 1] as readonly [number, number];
    if (hour <= h1) return q0 + ((q1 - q0) * (hour - h0)) / (h1 - h0);
  }
  return DAILY_QPS[0]?.[1] ?? 0;
}

/** The arrival rate at `ms` after midnight, requests/s: the curve, times 10 during the spike. */
export function arrivalRate(ms: number): number {
  const inSpike = ms >= SPIKE.startMs && ms < SPIKE.startMs + SPIKE.durationMs;
  return curveQps(ms) * (inSpike ? SPIKE.multiplier : 1);
}

/** The highest QPS of the curve (the peak hour, 13:00-15:00), spike excluded. */
export const PEAK_QPS = Math.max(...DAILY_QPS.map(([, q]) => q));

/** One kind of request of the mix. `share` is of all requests of every tier. */
export interface Variant {
  readonly label: string;
  readonly model: ModelName;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly share: number;
}

/** Seed 001's model distribution (the policy's modelDistribution), with tiny-sd for "other". */
export const FAMILY_SHARES = { sdxl: 0.6, sd3: 0.2, flux: 0.15, other: 0.05 } as const;

const v = (label: string, model: ModelName, side: number, steps: number, share: number): Variant => ({
  label,
  model,
  width: side,
  height: side,
  steps,
  share,
});

/** The variants, shares within each family times the family's share (see the header for why these). */
export const VARIANTS: readonly Variant[] = [
  v('sdxl-turbo 512 4st', 'sdxl-turbo', 512, 4, FAMILY_SHARES.sdxl * 0.5),
  v('sdxl-turbo 1024 4st', 'sdxl-turbo', 1024, 4, FAMILY_SHARES.sdxl * 0.3),
  v('sdxl 768 20st', 'sdxl', 768, 20, FAMILY_SHARES.sdxl * 0.2),
  v('sd3 1024 4st', 'sd3', 1024, 4, FAMILY_SHARES.sd3 * 0.85),
  v('sd3 1024 28st', 'sd3', 1024, 28, FAMILY_SHARES.sd3 * 0.15),
  v('flux 1024 4st', 'flux', 1024, 4, FAMILY_SHARES.flux * 0.9),
  v('flux 1024 28st', 'flux', 1024, 28, FAMILY_SHARES.flux * 0.1),
  v('tiny-sd 256 4st', 'tiny-sd', 256, 4, FAMILY_SHARES.other),
];

/** Tier shares of all requests (the split). */
export const TIER_SHARES: Readonly<Record<Tier, number>> = { turbo: 0.1, fast: 0.6, relax: 0.3 };

/** Tiers by index, as the simulation stores them: 0 turbo, 1 fast, 2 relax. */
export const TIER_INDEX: Readonly<Record<Tier, number>> = { turbo: 0, fast: 1, relax: 2 };

/** Where a (variant, tier) goes and how long it holds a GPU there: the real routing and latency model. */
export interface Placement {
  readonly gpuType: GpuType;
  readonly serviceMs: number;
}

/** placement[variant][tier index]. */
export function placements(variants: readonly Variant[] = VARIANTS): Placement[][] {
  return variants.map((x) =>
    TIERS.map((tier) => {
      const job = { model: x.model, width: x.width, height: x.height, numImages: 1, steps: x.steps };
      const gpuType = routeToGpu({ ...job, tier, loras: [], controlnets: [] }).gpuType;
      return { gpuType, serviceMs: serviceMs(job, gpuType) };
    }),
  );
}

/** Per fleet: the share of all requests it gets and their mean service time, seconds. */
export interface FleetLoad {
  readonly share: number;
  readonly meanServiceS: number;
  /** The models it serves (what a new worker loads while it warms up). */
  readonly models: readonly ModelName[];
}

export function fleetLoads(variants: readonly Variant[] = VARIANTS): Map<GpuType, FleetLoad> {
  const table = placements(variants);
  const acc = new Map<GpuType, { share: number; work: number; models: Set<ModelName> }>();
  variants.forEach((x, i) =>
    TIERS.forEach((tier, t) => {
      const p = table[i]?.[t];
      if (!p) return;
      const share = x.share * TIER_SHARES[tier];
      const a = acc.get(p.gpuType) ?? { share: 0, work: 0, models: new Set<ModelName>() };
      a.share += share;
      a.work += share * (p.serviceMs / 1000);
      a.models.add(x.model);
      acc.set(p.gpuType, a);
    }),
  );
  return new Map(
    [...acc].map(([g, a]) => [g, { share: a.share, meanServiceS: a.work / a.share, models: [...a.models] }]),
  );
}

/** One request as it arrives. */
export interface Arrival {
  readonly atMs: number;
  readonly variant: number;
  readonly tier: number;
}

function cumulative(shares: readonly number[]): number[] {
  const total = shares.reduce((s, x) => s + x, 0);
  let run = 0;
  return shares.map((x) => (run += x / total));
}

function draw(cdf: readonly number[], u: number): number {
  for (let i = 0; i < cdf.length; i++) if (u < (cdf[i] ?? 1)) return i;
  return cdf.length - 1;
}

/**
 * Poisson arrivals over [fromMs, toMs) (ms after midnight) at arrivalRate, by thinning minute by minute (the rate is
 * linear within a minute and the spike starts and ends on a minute, so each minute's bound is the larger end).
 * Deterministic for a seed: the same seed gives the same requests in the same order.
 */
export class ArrivalSource {
  private readonly random: () => number;
  private readonly variantCdf = cumulative(VARIANTS.map((x) => x.share));
  private readonly tierCdf = cumulative(TIERS.map((t) => TIER_SHARES[t]));
  private t: number;
  private bucketEnd: number;
  private bound = 0;

  constructor(
    seed: number,
    fromMs: number,
    private readonly toMs: number,
    private readonly rate: (ms: number) => number = arrivalRate,
  ) {
    this.random = seededRandom(seed);
    this.t = fromMs;
    this.bucketEnd = fromMs;
  }

  next(): Arrival | undefined {
    for (;;) {
      if (this.t >= this.bucketEnd) {
        if (this.t >= this.toMs) return undefined;
        this.bucketEnd = Math.min(this.toMs, (Math.floor(this.t / MINUTE_MS) + 1) * MINUTE_MS);
        this.bound = Math.max(this.rate(this.t), this.rate(this.bucketEnd - 1e-6));
      }
      if (this.bound <= 0) {
        this.t = this.bucketEnd;
        continue;
      }
      const next = this.t - (Math.log(1 - this.random()) / this.bound) * 1000;
      if (next >= this.bucketEnd) {
        this.t = this.bucketEnd; // memoryless: start the next minute afresh
        continue;
      }
      this.t = next;
      if (this.random() * this.bound > this.rate(next)) continue;
      return { atMs: next, variant: draw(this.variantCdf, this.random()), tier: draw(this.tierCdf, this.random()) };
    }
  }
}
