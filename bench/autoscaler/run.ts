// The autoscaler day's event loop: for each strategy, the same seeded arrivals go through the real routing to their
// fleets, workers serve them, and the strategy resizes the fleets every 15 s of simulated time. After the window the
// arrivals and the ticks stop and the fleets, at their last size, drain what was accepted, so every request ends
// either refused or served exactly once; GPU time is billed within the window only.
import { SEED_001_POLICY, type AutoscalePolicy } from '../../core/autoscale-policy';
import { GPU_TYPES, type GpuType } from '../../core/gpu';
import { EventQueue } from './events';
import { DEFAULT_ADMISSION_BOUNDS_MS, Fleet, type FleetEvent } from './fleet';
import { coldStartMs, makeController, staticPeakSizes, STRATEGIES, type StrategyName } from './strategies';
import { ArrivalSource, fleetLoads, MINUTE_MS, placements, SPIKE, type Arrival, type FleetLoad } from './traffic';

/** The autoscaler's period (the seed gives none; the autoscaler workflow's loop and a Prometheus scrape both fit). */
export const TICK_MS = 15_000;

export interface SimOptions {
  readonly seed: number;
  /** Window, ms after midnight UTC of the simulated day. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly policy?: AutoscalePolicy;
  readonly strategies?: readonly StrategyName[];
  /** Admission's wait bound per tier (turbo, fast, relax), ms. @default the gateway's (fleet.ts) */
  readonly admissionBoundsMs?: readonly number[];
}

/** The spike's aftermath: requests arriving from its start until this much later are left out of the calm figures. */
export const SPIKE_AFTERMATH_MS = 30 * MINUTE_MS;
const calmAt = (ms: number): boolean => ms < SPIKE.startMs || ms >= SPIKE.startMs + SPIKE_AFTERMATH_MS;

/** The fleets at the start of a minute (sizes, interactive and relax queues), in the run's fleet order. */
export interface MinuteSample {
  readonly atMs: number;
  readonly replicas: readonly number[];
  readonly queue: readonly number[];
  readonly relax: readonly number[];
}

export interface StrategyRun {
  readonly name: StrategyName;
  readonly fleets: readonly Fleet[];
  readonly arrivals: number;
  readonly minutes: readonly MinuteSample[];
  /** Requests accepted but neither started nor finished when the events ran out (0 unless the model is broken). */
  readonly leftBehind: number;
  readonly causes: ReadonlyMap<GpuType, Record<string, number>>;
  /** Most workers of the pool (all fleets, warming included) after any tick. */
  readonly poolMaxReplicas: number;
  readonly wallMs: number;
}

export interface SimResult extends Setup {
  readonly runs: readonly StrategyRun[];
}

type Payload = FleetEvent | { readonly kind: 'arrival'; readonly arrival: Arrival } | { readonly kind: 'tick' };

/** What every strategy's run shares: the options, the policy, the fleets and their loads, sizes and cold starts. */
interface Setup {
  readonly options: SimOptions;
  readonly policy: AutoscalePolicy;
  readonly fleetTypes: readonly GpuType[];
  readonly loads: ReadonlyMap<GpuType, FleetLoad>;
  readonly peak: ReadonlyMap<GpuType, number>;
  readonly coldStart: ReadonlyMap<GpuType, number>;
  /** Arrivals per minute of the window (the same for every strategy). */
  readonly arrivalsPerMinute: Int32Array;
}

function runStrategy(name: StrategyName, s: Setup): StrategyRun {
  const started = performance.now();
  const { fromMs, toMs, seed } = s.options;
  const table = placements();
  const controller = makeController(name, { policy: s.policy, peak: s.peak, loads: s.loads });
  const queue = new EventQueue<Payload>();
  const schedule = (atMs: number, event: FleetEvent): void => queue.push(atMs, event);
  const bounds = s.options.admissionBoundsMs ?? DEFAULT_ADMISSION_BOUNDS_MS;
  const fleets = s.fleetTypes.map(
    (g) => new Fleet(g, s.coldStart.get(g) ?? 0, controller.initialSize(g, fromMs), fromMs, toMs, schedule, bounds),
  );
  const byType = new Map(fleets.map((f) => [f.gpuType, f]));
  const source = new ArrivalSource(seed, fromMs, toMs);
  const minutes: MinuteSample[] = [];
  // The arrivals are the same for every strategy: the first run counts them.
  const countMinutes = s.arrivalsPerMinute.every((x) => x === 0);
  let arrivals = 0;
  let poolMaxReplicas = fleets.reduce((sum, f) => sum + f.replicas, 0);
  const first = source.next();
  if (first) queue.push(first.atMs, { kind: 'arrival', arrival: first });
  queue.push(fromMs, { kind: 'tick' });
  for (let ev = queue.pop(); ev; ev = queue.pop()) {
    const p = ev.payload;
    const now = ev.atMs;
    if (p.kind === 'arrival') {
      const a = p.arrival;
      const place = table[a.variant]?.[a.tier];
      const fleet = place && byType.get(place.gpuType);
      if (!place || !fleet) throw new Error(`no fleet for variant ${a.variant} tier ${a.tier}`);
      fleet.arrive({ arrivalMs: a.atMs, serviceMs: place.serviceMs, tier: a.tier, calm: calmAt(a.atMs) }, now);
      arrivals++;
      if (countMinutes) s.arrivalsPerMinute[Math.floor((a.atMs - fromMs) / MINUTE_MS)]!++;
      const next = source.next();
      if (next) queue.push(next.atMs, { kind: 'arrival', arrival: next });
    } else if (p.kind === 'done') p.fleet.done(p.worker, now);
    else if (p.kind === 'warm') p.fleet.warm(p.worker, now);
    else if (now < toMs) {
      if ((now - fromMs) % MINUTE_MS === 0) {
        minutes.push({
          atMs: now,
          replicas: fleets.map((f) => f.replicas),
          queue: fleets.map((f) => f.queueDepth),
          relax: fleets.map((f) => f.relaxDepth),
        });
      }
      controller.tick(now, fleets);
      poolMaxReplicas = Math.max(
        poolMaxReplicas,
        fleets.reduce((sum, f) => sum + f.replicas, 0),
      );
      queue.push(now + TICK_MS, { kind: 'tick' });
    }
  }
  const leftBehind = fleets.reduce((sum, f) => sum + f.waiting + f.inService, 0);
  return {
    name,
    fleets,
    arrivals,
    minutes,
    leftBehind,
    causes: controller.causes,
    poolMaxReplicas,
    wallMs: performance.now() - started,
  };
}

/** Runs every strategy over the window on the same seeded arrivals. */
export function simulate(options: SimOptions): SimResult {
  const policy = options.policy ?? SEED_001_POLICY;
  const loads = fleetLoads();
  const fleetTypes = GPU_TYPES.filter((g) => loads.has(g));
  const peak = staticPeakSizes(loads, policy);
  const coldStart = new Map(fleetTypes.map((g) => [g, coldStartMs(loads.get(g) as FleetLoad)]));
  const minutes = Math.ceil((options.toMs - options.fromMs) / MINUTE_MS);
  const setup: Setup = {
    options,
    policy,
    fleetTypes,
    loads,
    peak,
    coldStart,
    arrivalsPerMinute: new Int32Array(minutes),
  };
  const runs = (options.strategies ?? STRATEGIES).map((name) => runStrategy(name, setup));
  return { ...setup, runs };
}
