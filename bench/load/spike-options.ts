// Flags of bench:load's spike profile (`--profile spike`, issue 11's load proof): offer `--multiplier` times the
// fleet's capacity for `--duration` seconds from many users, against the gateway's production admission caps, and
// check that the excess is shed with documented codes while nothing accepted is lost. Parsed apart from the other
// profiles' flags (options.ts) so each file stays readable; the number parser comes from there.

export interface SpikeOptions {
  /** Offered rate over the measured (or given) capacity: issue 11 asks for 10. */
  readonly multiplier: number;
  /** How long the spike's arrivals last, s. */
  readonly durationS: number;
  /** --capacity, completed requests/s; undefined: measured by a calibration burst before the spike. */
  readonly capacity: number | undefined;
  /** Requests in the calibration burst (from users of their own, see calibrationUsers). */
  readonly calibrationCount: number;
  /**
   * How long a request is waited for after it was sent before it counts as lost, s; undefined: derived from the
   * in-flight bound and the capacity once both are known (spikeWaitS).
   */
  readonly waitS: number | undefined;
  /** Turbo's queue wait p99 must stay at or under this, ms. */
  readonly turboWaitBoundMs: number;
}

/**
 * Default bound on turbo's queue wait: the turbo tier's wait in its GPU fleet's queue before the workflow moves it to
 * the next fleet (GPU_SCHEDULE_TO_START.turbo, workflows/activity-options.ts), the deployment's own statement of how
 * long turbo may queue. A FIFO queue holding the in-flight bound at this machine's capacity would take minutes.
 */
export const TURBO_WAIT_BOUND_S = 60;

/**
 * Requests each calibration user sends at most: half the production in-flight cap per user (50) and a quarter of
 * its rate (100/min), so the calibration burst measures the fleet and not the caps.
 */
const CALIBRATION_REQUESTS_PER_USER = 25;

type NumberFlag = (flag: string, fallback: number, min: number, max?: number) => number;

/** The spike profile's settings; `num` parses one numeric flag (options.ts's parser, with its messages). */
export function spikeOptions(quick: boolean, num: NumberFlag, given: (flag: string) => boolean): SpikeOptions {
  return {
    multiplier: num('multiplier', 10, 0.01, 1000),
    durationS: num('duration', quick ? 10 : 60, 1, 3600),
    capacity: given('capacity') ? num('capacity', 0, 0.001, 1e6) : undefined,
    calibrationCount: Math.round(num('calibration-count', quick ? 40 : 150, 10, 10_000)),
    waitS: given('wait') ? num('wait', 0, 1, 24 * 3600) : undefined,
    turboWaitBoundMs: num('turbo-wait-bound', TURBO_WAIT_BOUND_S, 0.001, 3600) * 1000,
  };
}

/** Users (API keys) of the calibration burst and its warm-up, kept apart so the spike's users start fresh. */
export function calibrationUsers(spike: SpikeOptions, warmup: number): number {
  return Math.max(1, Math.ceil((spike.calibrationCount + warmup) / CALIBRATION_REQUESTS_PER_USER));
}

/**
 * How long to wait for each request after sending it: the time the fleet needs to serve everything the caps let
 * in (the in-flight bound at `capacity`) three times over, plus a minute, within [60 s, 20 min]. A request still
 * open then is lost.
 */
export function spikeWaitS(spike: SpikeOptions, inFlightBound: number, capacity: number): number {
  if (spike.waitS !== undefined) return spike.waitS;
  const drainS = capacity > 0 ? inFlightBound / capacity : Infinity;
  return Math.round(Math.min(1200, Math.max(60, 60 + 3 * drainS)));
}

/** The offered rate of the spike, requests/s, and how many requests that is over its duration. */
export function spikeArrivals(spike: SpikeOptions, capacity: number): { rate: number; count: number } {
  const rate = Math.round(capacity * spike.multiplier * 100) / 100;
  return { rate, count: Math.max(1, Math.round(rate * spike.durationS)) };
}
