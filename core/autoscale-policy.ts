// Seed 001's GPU pool autoscaling policy as data (issue 13): every trigger with its threshold and duration, the
// constraints, the tier minimums, the model distribution, the time-of-day pre-scaling schedule, and the shape of the
// day the traffic forecast follows (core/autoscale-forecast.ts). The numbers are the seed's; a deployment changes
// them with a JSON file (ATELIER_AUTOSCALE_POLICY) checked by the schema below. The
// decisions over these numbers are in core/autoscale.ts. Pure data and functions: the autoscaler workflow, the local
// driver and the day simulation all read the same policy.
import { z } from 'zod';
import { forecastSchema, SEED_001_FORECAST } from './autoscale-forecast';
import { GPU_TYPES, type GpuType } from './gpu';

/** A condition that must hold `forMs` before it counts (0: at once). */
const sustained = z.strictObject({ threshold: z.number().nonnegative(), forMs: z.number().int().nonnegative() });
export type Sustained = z.infer<typeof sustained>;

const gpuType = z.enum(GPU_TYPES);

export const autoscalePolicySchema = z
  .strictObject({
    scaleUp: z.strictObject({
      /** Tasks waiting on the turbo fleet's queue. Seed: > 10 for 30 s. */
      turboQueueDepth: sustained,
      /** Tasks waiting on a fast fleet's queue. Seed: > 50 for 60 s. */
      fastQueueDepth: sustained,
      /** Tasks waiting on a fleet's relax lane. Seed: > 500 for 120 s. */
      relaxQueueDepth: sustained,
      /** Mean wait of a fast fleet's requests, seconds. Seed: > 15 s for 60 s. */
      fastAvgWaitS: sustained,
      /** Mean wait of relax requests, seconds. Seed: > 5 min for 120 s. */
      relaxAvgWaitS: sustained,
      /** Forecast demand over current capacity. Seed: > 0.8. */
      predictedOverCapacity: z.number().positive(),
    }),
    scaleDown: z.strictObject({
      /** Every queue of the fleet below this. Seed: < 20 for 10 min. */
      allQueuesBelow: sustained,
      /** Mean GPU duty cycle of the fleet, 0..1. Seed: < 30% for 10 min. */
      gpuUtilizationBelow: sustained,
      /** Forecast demand over current capacity. Seed: < 0.5. */
      predictedUnderCapacity: z.number().positive(),
    }),
    constraints: z.strictObject({
      /** GPU workers of a region's pool, all fleets together. Seed: 20 and 200. */
      minWorkers: z.number().int().nonnegative(),
      maxWorkers: z.number().int().positive(),
      /** Least time between two scale-ups of a fleet, and from any step of a fleet to its next scale-down. */
      cooldownUpMs: z.number().int().nonnegative(),
      cooldownDownMs: z.number().int().nonnegative(),
      /** Workers added or removed per step. Seed: +5, -3. */
      scaleUpIncrement: z.number().int().positive(),
      scaleDownIncrement: z.number().int().positive(),
    }),
    /** Workers each tier always has. Seed: turbo 5, fast 10, relax 5. */
    tierMinimums: z.strictObject({
      turbo: z.number().int().nonnegative(),
      fast: z.number().int().nonnegative(),
      relax: z.number().int().nonnegative(),
    }),
    /**
     * The fleet that holds each tier's minimum: turbo runs on H100 (routing's turbo row), fast's standard SDXL on
     * A10G, and relax, which runs on idle capacity of the fleets it is routed to, mostly on A10G.
     */
    tierFleets: z.strictObject({ turbo: gpuType, fast: gpuType, relax: gpuType }),
    /** Shares of requests by model family (seed: sdxl 60%, sd3 20%, flux 15%, other 5%); the simulation's mix. */
    modelDistribution: z.record(z.string(), z.number().min(0).max(1)),
    /** Pre-scaling: from `at` (UTC, HH:MM) each fleet keeps at least `share` of its peak size. */
    schedule: z
      .array(z.strictObject({ at: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/), share: z.number().min(0).max(1) }))
      .min(1),
    /** The traffic forecast behind the predicted-traffic triggers (core/autoscale-forecast.ts). */
    forecast: forecastSchema,
  })
  .refine((p) => p.constraints.minWorkers <= p.constraints.maxWorkers, {
    message: 'constraints.minWorkers is above constraints.maxWorkers',
  });

export type AutoscalePolicy = z.infer<typeof autoscalePolicySchema>;

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

/** Seed 001's numbers, every one of them. */
export const SEED_001_POLICY: AutoscalePolicy = {
  scaleUp: {
    turboQueueDepth: { threshold: 10, forMs: 30 * SECOND },
    fastQueueDepth: { threshold: 50, forMs: 60 * SECOND },
    relaxQueueDepth: { threshold: 500, forMs: 120 * SECOND },
    fastAvgWaitS: { threshold: 15, forMs: 60 * SECOND },
    relaxAvgWaitS: { threshold: 300, forMs: 120 * SECOND },
    predictedOverCapacity: 0.8,
  },
  scaleDown: {
    allQueuesBelow: { threshold: 20, forMs: 10 * MINUTE },
    gpuUtilizationBelow: { threshold: 0.3, forMs: 10 * MINUTE },
    predictedUnderCapacity: 0.5,
  },
  constraints: {
    minWorkers: 20,
    maxWorkers: 200,
    cooldownUpMs: 120 * SECOND,
    cooldownDownMs: 300 * SECOND,
    scaleUpIncrement: 5,
    scaleDownIncrement: 3,
  },
  tierMinimums: { turbo: 5, fast: 10, relax: 5 },
  tierFleets: { turbo: 'h100', fast: 'a10g', relax: 'a10g' },
  modelDistribution: { sdxl: 0.6, sd3: 0.2, flux: 0.15, other: 0.05 },
  schedule: [
    { at: '02:00', share: 0.3 },
    { at: '06:00', share: 0.5 },
    { at: '10:00', share: 1 },
    { at: '14:00', share: 1 },
    { at: '22:00', share: 0.7 },
  ],
  forecast: SEED_001_FORECAST,
};

/** Thrown for a policy file that does not fit the schema; the message names the field. */
export class AutoscalePolicyError extends TypeError {
  override readonly name = 'AutoscalePolicyError';
}

/** A policy from JSON: seed 001's, with the sections the JSON gives replaced (each section whole), validated. */
export function parseAutoscalePolicy(raw: unknown, source = 'the autoscale policy'): AutoscalePolicy {
  // A `$comment` key documents the file (as in config/regions.json); it is no part of the policy.
  const sections = typeof raw === 'object' && raw !== null ? { ...raw } : raw;
  if (typeof sections === 'object' && sections !== null) delete (sections as Record<string, unknown>).$comment;
  const merged = typeof sections === 'object' && sections !== null ? { ...SEED_001_POLICY, ...sections } : sections;
  const result = autoscalePolicySchema.safeParse(merged);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new AutoscalePolicyError(`${source}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
}

function minuteOfDay(at: string): number {
  const [h, m] = at.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/** The pre-scaling share in force at `nowMs` (UTC): the last entry at or before that time of day, wrapping at midnight. */
export function scheduledShare(policy: Pick<AutoscalePolicy, 'schedule'>, nowMs: number): number {
  const now = Math.floor((nowMs % 86_400_000) / 60_000);
  const entries = [...policy.schedule].sort((a, b) => minuteOfDay(a.at) - minuteOfDay(b.at));
  const inForce = entries.filter((e) => minuteOfDay(e.at) <= now).at(-1) ?? entries.at(-1);
  return inForce?.share ?? 1;
}

/** The workers a fleet keeps whatever the load: the minimums of the tiers it holds (seed: H100 5, A10G 10 + 5). */
export function fleetMinimum(policy: Pick<AutoscalePolicy, 'tierMinimums' | 'tierFleets'>, fleet: GpuType): number {
  return (['turbo', 'fast', 'relax'] as const)
    .filter((tier) => policy.tierFleets[tier] === fleet)
    .reduce((sum, tier) => sum + policy.tierMinimums[tier], 0);
}
