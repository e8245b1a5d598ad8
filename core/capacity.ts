// Admission by capacity (issue 11): whether a fleet can start a new request of a tier within that tier's wait bound,
// judged from its queue's backlog and drain rate as Temporal reports them (DescribeTaskQueue statistics, sampled by
// the region's control worker and shared through Redis). Pure.
//
// Turbo and fast share a fleet's queue as priorities (turbo 1, fast 3), so a new request waits behind the backlog of
// its own and higher priorities only: expected wait = backlog at priority <= its key / tasks dispatched per second.
// Relax waits in the fleet's relax lane (core/gpu.ts), which drains on idle capacity only: its wait is the lane's
// backlog over the lane's own drain rate.
// A tier is shed when that wait exceeds its admission bound, in a fixed order: relax whenever fast is shed (relax first), and
// turbo only when fast is shed too (never turbo before fast).
import { TIER_PRIORITY_KEY, type Tier } from './tiers';

/**
 * The longest a request of each tier waits for a GPU of one fleet, ms: the GPU step's schedule-to-start bound
 * (workflows/activity-options.ts), after which the request moves on to the next fleet.
 */
export const TIER_QUEUE_WAIT_BOUND_MS: Readonly<Record<Tier, number>> = {
  turbo: 60_000,
  fast: 3 * 60_000,
  relax: 15 * 60_000,
};

/**
 * The longest expected wait at which a new request of each tier is still admitted, ms. Fast is admitted up to twice
 * its 15 s wait target (seed 001 scales up on waits over twice the target): a request that would wait longer is
 * told at once, with `retryAfterMs`, instead of waiting minutes. Under a 10x spike this keeps 99.3% of the admitted
 * fast requests under 15 s over a simulated day, where the 3-minute failover bound admitted work that waited up to it
 * (98.2%; README "Autoscaling"). Turbo and relax keep their failover bounds: turbo is shed only after fast anyway, and
 * relax promises minutes.
 */
export const TIER_ADMISSION_WAIT_BOUND_MS: Readonly<Record<Tier, number>> = {
  turbo: TIER_QUEUE_WAIT_BOUND_MS.turbo,
  fast: 30_000,
  relax: TIER_QUEUE_WAIT_BOUND_MS.relax,
};

/**
 * The same bounds for the region's control queue, where each request's workflow tasks wait: a workflow task is
 * milliseconds of work, so a queue seconds deep means the orchestration itself is behind (the control worker or the
 * Temporal server saturated), and every tier would wait there before reaching any GPU. Under the gateway's 30 s
 * start window, so the service sheds with QUEUE_FULL before starts begin to fail as SERVICE_UNAVAILABLE.
 */
export const CONTROL_QUEUE_WAIT_BOUND_MS: Readonly<Record<Tier, number>> = {
  turbo: 25_000,
  fast: 15_000,
  relax: 5_000,
};

/** One sample of a fleet's queue. */
export interface QueueSnapshot {
  /** When it was taken, ms since epoch. */
  readonly at: number;
  /** Tasks waiting, by Temporal priority key (1..5). */
  readonly backlogByPriority: Readonly<Record<string, number>>;
  /** Tasks the fleet's workers took per second, lately. */
  readonly dispatchPerSecond: number;
}

/** Expected wait of a new request of `tier`, ms; undefined when the queue drains nothing yet has work (unknown). */
export function expectedWaitMs(snapshot: QueueSnapshot, tier: Tier): number | undefined {
  const key = TIER_PRIORITY_KEY[tier];
  let ahead = 0;
  for (const [priority, count] of Object.entries(snapshot.backlogByPriority)) {
    if (Number(priority) <= key) ahead += count;
  }
  if (ahead === 0) return 0;
  if (!(snapshot.dispatchPerSecond > 0)) return undefined;
  return (ahead / snapshot.dispatchPerSecond) * 1000;
}

export type CapacityVerdict = { readonly shed: false } | { readonly shed: true; readonly retryAfterMs: number };

type Bounds = Readonly<Record<Tier, number>>;

/**
 * Whether a new request of `tier` is shed, and when its tier's wait should be back under its bound. `snapshot` is the
 * fleet's queue (turbo, fast); `relaxLane`, when sampled, the fleet's relax lane.
 */
export function capacityVerdict(
  snapshot: QueueSnapshot,
  tier: Tier,
  bounds: Bounds = TIER_ADMISSION_WAIT_BOUND_MS,
  relaxLane?: QueueSnapshot,
): CapacityVerdict {
  const of = (t: Tier): QueueSnapshot => (t === 'relax' && relaxLane ? relaxLane : snapshot);
  const over = (t: Tier): boolean => (expectedWaitMs(of(t), t) ?? 0) > bounds[t];
  const fastShed = over('fast');
  const shed = tier === 'relax' ? fastShed || over('relax') : tier === 'fast' ? fastShed : fastShed && over('turbo');
  if (!shed) return { shed: false };
  // The tier that decided it: relax shed because fast is, waits as long as fast does.
  const deciding: Tier = tier === 'relax' && fastShed && !over('relax') ? 'fast' : tier;
  const wait = expectedWaitMs(of(deciding), deciding) ?? 0;
  // With no new arrivals, the backlog ahead drains to the bound in (wait - bound) at the current rate.
  const retryAfterMs = Math.round(Math.min(15 * 60_000, Math.max(1_000, wait - bounds[deciding])));
  return { shed: true, retryAfterMs };
}
