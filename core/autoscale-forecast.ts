// The live traffic forecast behind seed 001's "predicted traffic" triggers (issue 13). A fleet's demand now is the GPUs
// it keeps busy: the sum of its workers' duty cycles, each over the last minute (inference/telemetry.ts). The forecast
// carries that demand along the day's traffic profile to the horizon: demand x level(now + ahead) / level(now). So a
// fleet at 60% duty at 09:00, when the profile climbs by a half in the next ten minutes, is forecast at 90% and grows
// before its queue does, and the same fleet at 22:00 is forecast lower and shrinks once its queues are short.
//
// The profile is a shape, not a volume: only its ratios count, so seed 001's typical day (10 QPS at night, 60 at the
// peak) serves a deployment of any size, and a deployment with another day gives its own in the policy file. What the
// forecast cannot see is traffic off the profile (a spike): the queue and wait triggers answer that. Pure.
import { z } from 'zod';

/** A point of the day's profile: (hour UTC, 0..24; relative level), linear in between, wrapping at midnight. */
const profilePoint = z.tuple([z.number().min(0).max(24), z.number().nonnegative()]);

export const forecastSchema = z
  .strictObject({
    /** Forecast from the fleets' busy GPUs and the profile; false: the fixed schedule is every fleet's floor. */
    enabled: z.boolean(),
    /** How far ahead the forecast looks, ms: about a new worker's cold start and one cooldown. */
    aheadMs: z.number().int().nonnegative(),
    /** The day's traffic shape, points sorted by hour, from 0 to 24. */
    profile: z.array(profilePoint).min(2),
  })
  .refine((f) => f.profile.every(([h], i) => i === 0 || h > f.profile[i - 1]![0]), {
    message: 'profile hours must increase',
  })
  .refine((f) => f.profile[0]![0] === 0 && f.profile.at(-1)![0] === 24, { message: 'profile must run from 0 to 24' });

export type ForecastPolicy = z.infer<typeof forecastSchema>;

/** Seed 001's "typical day", read off its chart: (hour UTC, QPS), linear in between. */
export const SEED_001_DAILY_QPS: readonly (readonly [number, number])[] = [
  [0, 10],
  [4, 10],
  [6, 15],
  [8, 25],
  [10, 40],
  [12, 55],
  [13, 60],
  [15, 60],
  [17, 50],
  [19, 35],
  [21, 22],
  [23, 12],
  [24, 10],
];

/** Ten minutes ahead, with the seed's day as the shape. */
export const SEED_001_FORECAST: ForecastPolicy = {
  enabled: true,
  aheadMs: 10 * 60_000,
  profile: SEED_001_DAILY_QPS.map(([h, q]) => [h, q] as [number, number]),
};

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** The profile's level at `ms` (epoch or after midnight UTC: the time of day is what counts). */
export function profileLevel(profile: readonly (readonly [number, number])[], ms: number): number {
  const hour = (((ms % DAY_MS) + DAY_MS) % DAY_MS) / HOUR_MS;
  for (let i = 1; i < profile.length; i++) {
    const [h1, q1] = profile[i]!;
    const [h0, q0] = profile[i - 1]!;
    if (hour <= h1) return h1 === h0 ? q1 : q0 + ((q1 - q0) * (hour - h0)) / (h1 - h0);
  }
  return profile[0]?.[1] ?? 0;
}

/** How the profile moves from now to the horizon: level(now + ahead) / level(now); 1 where the level now is 0. */
export function forecastRatio(forecast: Pick<ForecastPolicy, 'aheadMs' | 'profile'>, nowMs: number): number {
  const now = profileLevel(forecast.profile, nowMs);
  return now > 0 ? profileLevel(forecast.profile, nowMs + forecast.aheadMs) / now : 1;
}

/**
 * Workers a fleet's traffic needs at the horizon, at full duty: the GPUs it keeps busy now (the sum of its workers'
 * duty cycles) carried along the profile. Undefined (no forecast: the schedule applies) when the forecast is off.
 */
export function predictedDemand(forecast: ForecastPolicy, busyGpus: number, nowMs: number): number | undefined {
  if (!forecast.enabled) return undefined;
  return Math.max(0, busyGpus) * forecastRatio(forecast, nowMs);
}
