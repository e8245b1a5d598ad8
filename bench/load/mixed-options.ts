// Flags of bench:load's mixed profile (`--profile mixed`, issue 11 item 5: relax runs on idle capacity only) and what
// they come to once the fleet's fast capacity is known: the fast rate, the Poisson arrivals both phases share, the
// size of the relax flood and the users that send it. Pure; parsed apart from the other profiles' flags (options.ts)
// so each file stays readable, with options.ts's number parser and messages.
import type { GpuType } from '../../core/gpu';
import { isModelName } from '../../core/models';
import { routeToGpu } from '../../core/routing';
import type { Arrival } from './arrivals';
import type { RequestMix } from './options';

export interface MixedOptions {
  /** Offered fast rate as a fraction of the fleet's fast capacity (Poisson arrivals at that mean rate). */
  readonly fastLoad: number;
  /** Seconds of fast arrivals in each phase, baseline and flood. */
  readonly durationS: number;
  /** --capacity, completed fast requests/s of the fleet; undefined: measured by a calibration burst first. */
  readonly capacity: number | undefined;
  /** Fast requests in the calibration burst. */
  readonly calibrationCount: number;
  /** --relax-flood, relax requests sent before the flood phase; undefined: sized from the capacity (floodSize). */
  readonly relaxFlood: number | undefined;
  /** Users (API keys) that send the flood, apart from the fast users, so their caps do not touch the fast ones. */
  readonly relaxUsers: number;
  /** Relax requests sent per second while the flood is submitted. */
  readonly floodRate: number;
  /** After the flood phase, how long the relax backlog may drain before what is left is cancelled, s. */
  readonly drainS: number;
}

/** Issue 11 item 5's acceptance: fast p99 queue wait under a relax flood within 1.2x of the wait without. */
export const FAST_WAIT_RATIO_BOUND = 1.2;

/**
 * Default ATELIER_SIM_SPEEDUP of the stack this profile spawns. At 1000 (the other profiles') a request's modelled
 * GPU time is far below its CPU cost in the stack, so the fleet would be bound by this machine's two cores and a
 * relax flood would slow fast work through the CPU alone; at 10 the modelled A10G is the bottleneck, as in production.
 */
export const MIXED_SIM_SPEEDUP = 10;

/** The request the profile sends in both tiers: SDXL at 512x512, 30 steps, which the matrix routes to the A10G fleet. */
export const MIXED_DEFAULT_MIX = { models: 'sdxl', sizes: '512x512', steps: '30' } as const;

/** Fast requests each calibration user sends at most: half the production in-flight cap, a quarter of the rate. */
const CALIBRATION_REQUESTS_PER_USER = 25;

/** The flood is this many times what the fleet's idle capacity drains over the phase, so it lasts the whole phase. */
const FLOOD_MARGIN = 2;

/** Flags only this profile reads: refused with another profile rather than ignored. */
const MIXED_ONLY_FLAGS = ['fast-load', 'relax-flood', 'relax-users', 'flood-rate', 'drain'];
/** Flags the mixed profile sets itself or does not read: refused with it rather than ignored. */
const NOT_MIXED_FLAGS = ['pattern', 'count', 'rate', 'tiers', 'multiplier', 'wait', 'turbo-wait-bound'];

/** Throws a TypeError naming a flag given to the wrong profile (`mixed`: whether the profile is mixed). */
export function checkMixedFlags(mixed: boolean, given: (flag: string) => boolean): void {
  const stray = (mixed ? NOT_MIXED_FLAGS : MIXED_ONLY_FLAGS).find(given);
  if (stray === undefined) return;
  throw new TypeError(
    mixed
      ? `--${stray} does not apply to --profile mixed: it sends its own fast and relax arrivals (--fast-load, --duration)`
      : `--${stray} is a flag of --profile mixed`,
  );
}

export const MIXED_HELP = `  --profile mixed          relax runs on idle capacity only (issue 11 item 5): measure one fleet's fast capacity
                           (a calibration burst), then two phases of Poisson fast arrivals at --fast-load of it
                           for --duration s each, the same arrivals both times: baseline, then after a relax flood
                           (other users, sent and answered first). Checks fast queue wait p99 (accepted to first
                           progress) within ${FAST_WAIT_RATIO_BOUND}x of the baseline's, 0 lost, relax progressing meanwhile;
                           then drains the relax backlog for --drain s and cancels the rest. Production caps.
                           Default request: sdxl ${MIXED_DEFAULT_MIX.sizes}, ${MIXED_DEFAULT_MIX.steps} steps (the a10g fleet); a spawned
                           stack runs that fleet only, at --sim-speedup ${MIXED_SIM_SPEEDUP}
  --fast-load X            mixed: fast rate over the fleet's fast capacity (default 0.5)
  --relax-flood N          mixed: relax requests in the flood (default: ${FLOOD_MARGIN}x what the idle capacity drains
                           in a phase, plus what it drains while the flood is sent)
  --relax-users N          mixed: users sending the flood (default 12, up to 45 each at the production caps)
  --flood-rate R           mixed: relax requests sent per second (default 25)
  --drain S                mixed: seconds the relax backlog may drain after the flood phase (default 60)
`;

type NumberFlag = (flag: string, fallback: number, min: number, max?: number) => number;

/** The mixed profile's settings; `num` parses one numeric flag (options.ts's parser, with its messages). */
export function mixedOptions(quick: boolean, num: NumberFlag, given: (flag: string) => boolean): MixedOptions {
  const whole = (flag: string, fallback: number, min: number, max: number): number => {
    const value = num(flag, fallback, min, max);
    if (!Number.isInteger(value)) throw new TypeError(`--${flag} ${value}: expected a whole number`);
    return value;
  };
  return {
    fastLoad: num('fast-load', 0.5, 0.01, 0.95),
    durationS: num('duration', quick ? 15 : 60, 1, 3600),
    capacity: given('capacity') ? num('capacity', 0, 0.001, 1e6) : undefined,
    calibrationCount: whole('calibration-count', quick ? 20 : 60, 5, 10_000),
    relaxFlood: given('relax-flood') ? whole('relax-flood', 0, 1, 100_000) : undefined,
    relaxUsers: whole('relax-users', quick ? 4 : 12, 1, 10_000),
    floodRate: num('flood-rate', 25, 0.1, 10_000),
    drainS: num('drain', quick ? 20 : 60, 0, 3600),
  };
}

/** Users of the calibration burst and its warm-up, kept apart so the measured phases' users start fresh. */
export function mixedCalibrationUsers(mixed: MixedOptions, warmup: number): number {
  return Math.max(1, Math.ceil((mixed.calibrationCount + warmup) / CALIBRATION_REQUESTS_PER_USER));
}

/**
 * The one GPU fleet every request of the mix routes to in both tiers: the profile compares fast waits on one fleet
 * with and without that fleet's relax lane full. Throws a TypeError naming the request that routes elsewhere.
 */
export function mixFleet(mix: RequestMix): GpuType {
  const fleets = new Set<GpuType>();
  for (const model of mix.models) {
    if (!isModelName(model)) throw new TypeError(`--models: unknown model ${model}`);
    for (const { width, height } of mix.sizes) {
      for (const tier of ['fast', 'relax'] as const) {
        const input = { model, tier, width, height, numImages: 1, loras: [], controlnets: [] };
        fleets.add(routeToGpu(input).gpuType);
      }
    }
  }
  const [fleet, ...others] = [...fleets];
  if (fleet === undefined || others.length > 0) {
    throw new TypeError(
      `--profile mixed needs requests that route to one fleet; these go to ${[...fleets].join(', ')}`,
    );
  }
  return fleet;
}

/**
 * Relax requests one user may have accepted at once under the stack's caps: 90% of the smaller of its in-flight cap
 * and its rate per minute (the flood is sent within a minute and stays in flight while it drains).
 */
export function relaxPerUser(env: Readonly<Record<string, string>>): number {
  const setting = (name: string, fallback: number): number => {
    const value = Number(env[name]);
    return env[name] !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
  };
  const cap = Math.min(setting('ATELIER_MAX_IN_FLIGHT_PER_USER', 50), setting('ATELIER_RATE_LIMIT_PER_MINUTE', 100));
  return Math.max(1, Math.floor(cap * 0.9));
}

/**
 * Relax requests in the flood: enough that the fleet's idle capacity, (1 - fastLoad) x capacity, finds relax work for
 * the whole phase with a margin, plus what the fleet drains at full capacity while the flood is being sent; at most
 * what `users` users may hold at once (`perUser` each). `capped` says the caps cut it down.
 */
export function floodSize(
  mixed: MixedOptions,
  capacity: number,
  users: number,
  perUser: number,
): { count: number; capped: boolean; most: number } {
  const most = users * perUser;
  const wanted =
    mixed.relaxFlood ??
    Math.ceil(
      (FLOOD_MARGIN * (1 - mixed.fastLoad) * capacity * mixed.durationS) /
        Math.max(0.2, 1 - capacity / mixed.floodRate),
    );
  return { count: Math.min(wanted, most), capped: wanted > most, most };
}

/** The fast rate of both phases, requests/s. */
export function fastRate(mixed: MixedOptions, capacity: number): number {
  return Math.round(capacity * mixed.fastLoad * 1000) / 1000;
}

/**
 * Poisson arrivals at `rate` for `durationS`: exponential gaps drawn from `random`. Both phases send this same
 * schedule, so the flood is the only difference between them.
 */
export function poissonArrivals(rate: number, durationS: number, random: () => number): Arrival[] {
  const out: Arrival[] = [];
  for (let t = -Math.log(1 - random()) / rate; t < durationS; t += -Math.log(1 - random()) / rate) {
    out.push({ offsetMs: t * 1000, rate });
  }
  return out;
}
