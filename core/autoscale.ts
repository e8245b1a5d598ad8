// Seed 001's autoscaling decisions (issue 13), over the numbers of core/autoscale-policy.ts. One call decides every
// fleet of one region's pool from its live signals: each trigger is a condition that must hold for its duration (the
// memory carries when each began), the fleet's floor is its tier minimums or the time-of-day share of its peak size,
// whichever is higher, and the pool stays within its minimum and maximum workers. Pure: the autoscaler workflow, the
// tests and the day simulation call the same code with the same memory.
//
// Choices where the seed is silent, and why:
// - A fleet scales down only when its queues are short (all < 20 for 10 min) *and* it is idle (utilization < 30% for
//   10 min) or the forecast is low (< 0.5 of capacity), and never while a scale-up condition holds: short queues
//   alone also describe a fleet busy at exactly its capacity, which removing workers would tip over.
// - Cooldowns: two scale-ups of a fleet are at least cooldown_up apart; a scale-down comes at least cooldown_down
//   after the fleet's last step of either kind, so a fleet never shrinks right after growing (no thrashing).
// - Time of day: a fleet with a traffic forecast (FleetSignals.predictedDemand) follows it through the seed's forecast
//   triggers (> 0.8 of capacity: up; < 0.5 with short queues: down). A fleet without one keeps the seed's fixed
//   pre-scaling schedule as its floor: raised to its scheduled share of its peak size in one step (the seed's "scale
//   to 50%"), within the same cooldown as any scale-up; a falling schedule only lowers the floor, and the fleet comes
//   down by the scale-down rule, 3 at a time. The fixed schedule is the fallback, not a floor under the forecast: it
//   holds every fleet at 100% from 10:00 to 22:00, which the day simulation prices at 0.79x a static peak fleet
//   where the forecast gets 0.57x at the same waits (README "Autoscaling").
// - Min and max workers, and the tier minimums, are per region: a region must be able to run alone.
import { predictedDemand } from './autoscale-forecast';
import { fleetMinimum, scheduledShare, type AutoscalePolicy, type Sustained } from './autoscale-policy';
import type { GpuType } from './gpu';

export const SCALE_UP_CONDITIONS = [
  'turbo_queue_depth',
  'fast_queue_depth',
  'relax_queue_depth',
  'fast_avg_wait',
  'relax_avg_wait',
  'predicted_traffic_high',
] as const;
export const SCALE_DOWN_CONDITIONS = ['all_queues_short', 'gpu_utilization_low', 'predicted_traffic_low'] as const;
export type Condition = (typeof SCALE_UP_CONDITIONS)[number] | (typeof SCALE_DOWN_CONDITIONS)[number];

/** What the autoscaler knows of one fleet at one moment. */
export interface FleetSignals {
  readonly gpuType: GpuType;
  /** Workers the fleet has now, those still warming up included. */
  readonly replicas: number;
  /** The fleet's size at 100% (the region catalogue's GPUs): what the schedule's shares are of. */
  readonly peakReplicas: number;
  /** Tasks waiting on the fleet's queue (turbo on the turbo fleet, fast on the others). */
  readonly queueDepth: number;
  /** Tasks waiting on the fleet's relax lane. */
  readonly relaxDepth: number;
  /** Mean wait of the fleet's waiting turbo or fast requests, seconds; unknown: no wait trigger. */
  readonly avgWaitS?: number;
  readonly relaxAvgWaitS?: number;
  /** Mean GPU duty cycle of the fleet's workers, 0..1; unknown: the fleet is not taken for idle. */
  readonly utilization?: number;
  /**
   * GPUs the fleet keeps busy, the sum of its workers' duty cycles over the last minute; with the policy's forecast
   * on, the forecast carries it to the horizon (core/autoscale-forecast.ts) unless `predictedDemand` is given.
   */
  readonly busyGpus?: number;
  /** Workers the forecast traffic needs at full utilization; unknown: no forecast triggers. */
  readonly predictedDemand?: number;
}

/** What the autoscaler remembers of a fleet between two decisions. */
export interface FleetMemory {
  /** When each condition that holds now began to hold, ms. */
  readonly since: Readonly<Partial<Record<Condition, number>>>;
  readonly lastUpAt?: number;
  /** The fleet's last step, up or down. */
  readonly lastStepAt?: number;
}
export type AutoscaleMemory = Readonly<Partial<Record<GpuType, FleetMemory>>>;

export interface FleetDecision {
  readonly gpuType: GpuType;
  readonly from: number;
  readonly to: number;
  readonly action: 'up' | 'down' | 'hold';
  /** The conditions that held for their whole duration. */
  readonly fired: readonly Condition[];
  /** Why, in words an operator reads in the log and the Web UI. */
  readonly reason: string;
}

interface Evaluated {
  readonly holds: ReadonlySet<Condition>;
  readonly fired: readonly Condition[];
  readonly since: Partial<Record<Condition, number>>;
  readonly detail: Readonly<Partial<Record<Condition, string>>>;
}

/** Which conditions hold for a fleet now, and which have held long enough to fire. */
function evaluate(policy: AutoscalePolicy, f: FleetSignals, previous: FleetMemory | undefined, now: number): Evaluated {
  const { scaleUp: up, scaleDown: down } = policy;
  const turbo = f.gpuType === policy.tierFleets.turbo;
  const over = (value: number | undefined, rule: Sustained): boolean => value !== undefined && value > rule.threshold;
  const checks: [Condition, boolean, number, string][] = [
    [
      'turbo_queue_depth',
      turbo && over(f.queueDepth, up.turboQueueDepth),
      up.turboQueueDepth.forMs,
      `turbo queue ${f.queueDepth} > ${up.turboQueueDepth.threshold}`,
    ],
    [
      'fast_queue_depth',
      !turbo && over(f.queueDepth, up.fastQueueDepth),
      up.fastQueueDepth.forMs,
      `fast queue ${f.queueDepth} > ${up.fastQueueDepth.threshold}`,
    ],
    [
      'relax_queue_depth',
      over(f.relaxDepth, up.relaxQueueDepth),
      up.relaxQueueDepth.forMs,
      `relax queue ${f.relaxDepth} > ${up.relaxQueueDepth.threshold}`,
    ],
    [
      'fast_avg_wait',
      !turbo && over(f.avgWaitS, up.fastAvgWaitS),
      up.fastAvgWaitS.forMs,
      `fast wait ${f.avgWaitS?.toFixed(1)} s > ${up.fastAvgWaitS.threshold} s`,
    ],
    [
      'relax_avg_wait',
      over(f.relaxAvgWaitS, up.relaxAvgWaitS),
      up.relaxAvgWaitS.forMs,
      `relax wait ${f.relaxAvgWaitS?.toFixed(0)} s > ${up.relaxAvgWaitS.threshold} s`,
    ],
    [
      'predicted_traffic_high',
      f.predictedDemand !== undefined && f.predictedDemand > f.replicas * up.predictedOverCapacity,
      0,
      `forecast ${f.predictedDemand?.toFixed(1)} workers > ${up.predictedOverCapacity} x ${f.replicas}`,
    ],
    [
      'all_queues_short',
      f.queueDepth < down.allQueuesBelow.threshold && f.relaxDepth < down.allQueuesBelow.threshold,
      down.allQueuesBelow.forMs,
      `queues ${f.queueDepth} and ${f.relaxDepth} < ${down.allQueuesBelow.threshold}`,
    ],
    [
      'gpu_utilization_low',
      f.utilization !== undefined && f.utilization < down.gpuUtilizationBelow.threshold,
      down.gpuUtilizationBelow.forMs,
      `utilization ${((f.utilization ?? 0) * 100).toFixed(0)}% < ${down.gpuUtilizationBelow.threshold * 100}%`,
    ],
    [
      'predicted_traffic_low',
      f.predictedDemand !== undefined && f.predictedDemand < f.replicas * down.predictedUnderCapacity,
      0,
      `forecast ${f.predictedDemand?.toFixed(1)} workers < ${down.predictedUnderCapacity} x ${f.replicas}`,
    ],
  ];
  const holds = new Set<Condition>();
  const fired: Condition[] = [];
  const since: Partial<Record<Condition, number>> = {};
  const detail: Partial<Record<Condition, string>> = {};
  for (const [condition, holding, forMs, text] of checks) {
    if (!holding) continue;
    const began = previous?.since[condition] ?? now;
    holds.add(condition);
    since[condition] = began;
    detail[condition] = `${text} for ${Math.round((now - began) / 1000)} s`;
    if (now - began >= forMs) fired.push(condition);
  }
  return { holds, fired, since, detail };
}

/** One fleet's step, before the pool's limits. */
function decideFleet(
  policy: AutoscalePolicy,
  f: FleetSignals,
  memory: FleetMemory | undefined,
  ev: Evaluated,
  now: number,
): FleetDecision {
  const c = policy.constraints;
  // A fleet never needs more than it has at 100%: tier minimums above a small region's fleet stop at its size.
  const minimum = Math.min(fleetMinimum(policy, f.gpuType), f.peakReplicas);
  // The fixed schedule stands in for a forecast: with one, time of day acts through the forecast triggers instead.
  const scheduled = f.predictedDemand === undefined ? Math.ceil(scheduledShare(policy, now) * f.peakReplicas) : 0;
  const floor = Math.max(minimum, scheduled);
  const upFired = ev.fired.filter((x) => (SCALE_UP_CONDITIONS as readonly string[]).includes(x));
  const upHolds = SCALE_UP_CONDITIONS.some((x) => ev.holds.has(x));
  const downFired =
    ev.fired.includes('all_queues_short') &&
    (ev.fired.includes('gpu_utilization_low') || ev.fired.includes('predicted_traffic_low'));
  const canUp = memory?.lastUpAt === undefined || now - memory.lastUpAt >= c.cooldownUpMs;
  const canDown = memory?.lastStepAt === undefined || now - memory.lastStepAt >= c.cooldownDownMs;
  const hold = (reason: string): FleetDecision => ({
    gpuType: f.gpuType,
    from: f.replicas,
    to: f.replicas,
    action: 'hold',
    fired: ev.fired,
    reason,
  });
  const why = (conditions: readonly Condition[]): string => conditions.map((x) => ev.detail[x]).join('; ');

  if (f.replicas < floor || upFired.length > 0) {
    const target = Math.min(
      c.maxWorkers,
      Math.max(floor, upFired.length > 0 ? f.replicas + c.scaleUpIncrement : f.replicas),
    );
    const cause =
      upFired.length > 0
        ? why(upFired)
        : `below its floor of ${floor} (tier minimums, schedule ${Math.round(scheduledShare(policy, now) * 100)}% of ${f.peakReplicas})`;
    if (!canUp) return hold(`${cause}; in scale-up cooldown`);
    if (target <= f.replicas) return hold(`${cause}; at the pool's maximum`);
    return { gpuType: f.gpuType, from: f.replicas, to: target, action: 'up', fired: ev.fired, reason: cause };
  }
  if (downFired && !upHolds && f.replicas > floor) {
    const cause = why(ev.fired.filter((x) => (SCALE_DOWN_CONDITIONS as readonly string[]).includes(x)));
    if (!canDown) return hold(`${cause}; in scale-down cooldown`);
    const target = Math.max(floor, f.replicas - c.scaleDownIncrement);
    return { gpuType: f.gpuType, from: f.replicas, to: target, action: 'down', fired: ev.fired, reason: cause };
  }
  return hold(
    upHolds
      ? `waiting: ${why([...ev.holds].filter((x) => (SCALE_UP_CONDITIONS as readonly string[]).includes(x)))}`
      : 'steady',
  );
}

/** Keeps the pool within max workers (trimming scale-ups, the turbo fleet's last) and at least min workers. */
function applyPoolLimits(
  policy: AutoscalePolicy,
  fleets: readonly FleetSignals[],
  decisions: FleetDecision[],
): FleetDecision[] {
  const { minWorkers, maxWorkers } = policy.constraints;
  const out = [...decisions];
  let total = out.reduce((sum, d) => sum + d.to, 0);
  const trimOrder = out
    .map((d, i) => i)
    .filter((i) => out[i]?.action === 'up')
    .sort(
      (a, b) =>
        Number(out[a]?.gpuType === policy.tierFleets.turbo) - Number(out[b]?.gpuType === policy.tierFleets.turbo),
    );
  for (const i of trimOrder) {
    const d = out[i];
    if (!d || total <= maxWorkers) break;
    const cut = Math.min(total - maxWorkers, d.to - d.from);
    total -= cut;
    out[i] =
      cut === d.to - d.from
        ? { ...d, to: d.from, action: 'hold', reason: `${d.reason}; the pool is at its maximum of ${maxWorkers}` }
        : { ...d, to: d.to - cut, reason: `${d.reason}; capped by the pool maximum of ${maxWorkers}` };
  }
  // The pool minimum, up to what the region has: raises go to the fast fleet first, then the others in order, each
  // up to its size, and count as steps only where they move a fleet (one may just cut a scale-down short).
  let short =
    Math.min(
      minWorkers,
      fleets.reduce((sum, f) => sum + f.peakReplicas, 0),
    ) - total;
  const fast = out.findIndex((d) => d.gpuType === policy.tierFleets.fast);
  const raiseOrder = [...(fast >= 0 ? [fast] : []), ...out.map((_, k) => k).filter((k) => k !== fast)];
  for (const k of raiseOrder) {
    const d = out[k];
    const add = Math.min(short, (fleets[k]?.peakReplicas ?? 0) - (d?.to ?? 0));
    if (!d || add <= 0) continue;
    short -= add;
    const to = d.to + add;
    const action = to > d.from ? 'up' : to < d.from ? 'down' : 'hold';
    out[k] = { ...d, to, action, reason: `${d.reason}; the pool is kept at its minimum of ${minWorkers}` };
  }
  return out;
}

/** The fleet's forecast demand from its busy GPUs, where the policy forecasts and no forecast was given. */
function withForecast(policy: AutoscalePolicy, f: FleetSignals, nowMs: number): FleetSignals {
  // A policy carried over from before the forecast existed (an older history) has none: it forecasts nothing.
  const forecast = policy.forecast as AutoscalePolicy['forecast'] | undefined;
  if (f.predictedDemand !== undefined || f.busyGpus === undefined || !forecast) return f;
  const predicted = predictedDemand(forecast, f.busyGpus, nowMs);
  return predicted === undefined ? f : { ...f, predictedDemand: predicted };
}

/** Decides every fleet of a region's pool at `nowMs`; returns the decisions and the memory for the next call. */
export function decideScale(
  policy: AutoscalePolicy,
  fleets: readonly FleetSignals[],
  memory: AutoscaleMemory,
  nowMs: number,
): { decisions: FleetDecision[]; memory: AutoscaleMemory } {
  fleets = fleets.map((f) => withForecast(policy, f, nowMs));
  const evaluated = fleets.map((f) => evaluate(policy, f, memory[f.gpuType], nowMs));
  const decisions = applyPoolLimits(
    policy,
    fleets,
    fleets.map((f, i) => decideFleet(policy, f, memory[f.gpuType], evaluated[i] as Evaluated, nowMs)),
  );
  const next: Partial<Record<GpuType, FleetMemory>> = {};
  for (const [i, d] of decisions.entries()) {
    const previous = memory[d.gpuType];
    const lastUpAt = d.action === 'up' ? nowMs : previous?.lastUpAt;
    const lastStepAt = d.action !== 'hold' ? nowMs : previous?.lastStepAt;
    next[d.gpuType] = {
      since: (evaluated[i] as Evaluated).since,
      ...(lastUpAt !== undefined ? { lastUpAt } : {}),
      ...(lastStepAt !== undefined ? { lastStepAt } : {}),
    };
  }
  return { decisions, memory: next };
}
