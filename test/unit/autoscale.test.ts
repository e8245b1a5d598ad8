// Seed 001's GPU pool autoscaling (issue 13), table-driven against the policy code: every scale-up trigger (just above
// its threshold for exactly its duration fires, one tick less or at the threshold does not), the scale-down rule of
// core/autoscale.ts's header (queues short for 10 min *and* idle or a low forecast, never while a scale-up condition
// holds, never below the floor), the constraints (cooldowns, increments, pool minimum and maximum), the tier minimums,
// the time-of-day schedule, the model distribution and the policy file's schema.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AutoscalePolicyError,
  fleetMinimum,
  parseAutoscalePolicy,
  scheduledShare,
  SEED_001_POLICY,
  type AutoscalePolicy,
} from '../../core/autoscale-policy';
import {
  decideScale,
  SCALE_DOWN_CONDITIONS,
  SCALE_UP_CONDITIONS,
  type AutoscaleMemory,
  type Condition,
  type FleetDecision,
  type FleetMemory,
  type FleetSignals,
} from '../../core/autoscale';
import { GPU_TYPES, type GpuType } from '../../core/gpu';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

/** 2026-01-01 at `h:m` UTC. */
const utc = (h: number, m = 0, s = 0): number => Date.UTC(2026, 0, 1, h, m, s);
/** Noon UTC: the seed's schedule keeps 100% of the peak then. */
const T0 = utc(12);

/** The seed's policy with a schedule share of 0 all day: only the tier minimums make a floor. */
const NO_SCHEDULE: AutoscalePolicy = { ...SEED_001_POLICY, schedule: [{ at: '00:00', share: 0 }] };

type Overrides = Partial<Omit<FleetSignals, 'gpuType'>>;

/** A fleet big enough (200 at 100%) that the tier minimums, not its size, make its floor. */
const signals = (gpuType: GpuType, replicas: number, o: Overrides = {}): FleetSignals => ({
  gpuType,
  replicas,
  peakReplicas: 200,
  queueDepth: 0,
  relaxDepth: 0,
  ...o,
});
const h100 = (replicas: number, o: Overrides = {}): FleetSignals => signals('h100', replicas, o);
const a10g = (replicas: number, o: Overrides = {}): FleetSignals => signals('a10g', replicas, o);

interface Step {
  readonly at: number;
  readonly fleets: readonly FleetSignals[];
}

/** Observations of the same signals every `tickMs` from `start` to `start + durationMs`, both ends included. */
function heldFor(fleets: readonly FleetSignals[], start: number, durationMs: number, tickMs = SECOND): Step[] {
  const steps: Step[] = [];
  for (let at = start; at < start + durationMs; at += tickMs) steps.push({ at, fleets });
  steps.push({ at: start + durationMs, fleets });
  return steps;
}

/** Runs the observations through decideScale, passing the memory on; the last call's decisions and memory. */
function runSteps(
  policy: AutoscalePolicy,
  steps: readonly Step[],
  memory: AutoscaleMemory = {},
): { decisions: FleetDecision[]; memory: AutoscaleMemory } {
  let result: { decisions: FleetDecision[]; memory: AutoscaleMemory } | undefined;
  let mem = memory;
  for (const step of steps) {
    result = decideScale(policy, step.fleets, mem, step.at);
    mem = result.memory;
  }
  assert.ok(result, 'no observation');
  return result;
}

/** Like runSteps, but each fleet's replicas follow the decisions (the scaler does what it is told); every decision. */
function simulate(
  policy: AutoscalePolicy,
  initial: readonly FleetSignals[],
  times: readonly number[],
  signalsAt: (at: number, f: FleetSignals) => FleetSignals = (_at, f) => f,
): { at: number; decisions: FleetDecision[] }[] {
  let fleets = [...initial];
  let memory: AutoscaleMemory = {};
  const history: { at: number; decisions: FleetDecision[] }[] = [];
  for (const at of times) {
    const observed = fleets.map((f) => signalsAt(at, f));
    const result = decideScale(policy, observed, memory, at);
    memory = result.memory;
    history.push({ at, decisions: result.decisions });
    fleets = fleets.map((f) => ({ ...f, replicas: pick(result.decisions, f.gpuType).to }));
  }
  return history;
}

const range = (start: number, end: number, tickMs: number): number[] => {
  const out: number[] = [];
  for (let at = start; at <= end; at += tickMs) out.push(at);
  return out;
};

function pick(decisions: readonly FleetDecision[], gpuType: GpuType): FleetDecision {
  const d = decisions.find((x) => x.gpuType === gpuType);
  assert.ok(d, `no decision for ${gpuType}`);
  return d;
}

const poolSize = (decisions: readonly FleetDecision[]): number => decisions.reduce((sum, d) => sum + d.to, 0);

describe('SEED_001_POLICY: the seed numbers', () => {
  const rows: [path: string, actual: (p: AutoscalePolicy) => unknown, expected: unknown][] = [
    ['scaleUp.turboQueueDepth: > 10 for 30 s', (p) => p.scaleUp.turboQueueDepth, { threshold: 10, forMs: 30_000 }],
    ['scaleUp.fastQueueDepth: > 50 for 60 s', (p) => p.scaleUp.fastQueueDepth, { threshold: 50, forMs: 60_000 }],
    ['scaleUp.relaxQueueDepth: > 500 for 120 s', (p) => p.scaleUp.relaxQueueDepth, { threshold: 500, forMs: 120_000 }],
    ['scaleUp.fastAvgWaitS: > 15 s for 60 s', (p) => p.scaleUp.fastAvgWaitS, { threshold: 15, forMs: 60_000 }],
    ['scaleUp.relaxAvgWaitS: > 5 min for 120 s', (p) => p.scaleUp.relaxAvgWaitS, { threshold: 300, forMs: 120_000 }],
    ['scaleUp.predictedOverCapacity: > 0.8', (p) => p.scaleUp.predictedOverCapacity, 0.8],
    ['scaleDown.allQueuesBelow: < 20 for 10 min', (p) => p.scaleDown.allQueuesBelow, { threshold: 20, forMs: 600_000 }],
    [
      'scaleDown.gpuUtilizationBelow: < 30% for 10 min',
      (p) => p.scaleDown.gpuUtilizationBelow,
      { threshold: 0.3, forMs: 600_000 },
    ],
    ['scaleDown.predictedUnderCapacity: < 0.5', (p) => p.scaleDown.predictedUnderCapacity, 0.5],
    ['constraints.minWorkers: 20', (p) => p.constraints.minWorkers, 20],
    ['constraints.maxWorkers: 200', (p) => p.constraints.maxWorkers, 200],
    ['constraints.cooldownUpMs: 120 s', (p) => p.constraints.cooldownUpMs, 120_000],
    ['constraints.cooldownDownMs: 300 s', (p) => p.constraints.cooldownDownMs, 300_000],
    ['constraints.scaleUpIncrement: 5', (p) => p.constraints.scaleUpIncrement, 5],
    ['constraints.scaleDownIncrement: 3', (p) => p.constraints.scaleDownIncrement, 3],
    ['tierMinimums: turbo 5, fast 10, relax 5', (p) => p.tierMinimums, { turbo: 5, fast: 10, relax: 5 }],
    [
      'tierFleets: turbo h100, fast and relax a10g',
      (p) => p.tierFleets,
      { turbo: 'h100', fast: 'a10g', relax: 'a10g' },
    ],
    [
      'modelDistribution: sdxl 60%, sd3 20%, flux 15%, other 5%',
      (p) => p.modelDistribution,
      { sdxl: 0.6, sd3: 0.2, flux: 0.15, other: 0.05 },
    ],
  ];
  for (const [name, actual, expected] of rows) {
    test(name, () => assert.deepEqual(actual(SEED_001_POLICY), expected));
  }

  test('the model distribution sums to 1', () => {
    const total = Object.values(SEED_001_POLICY.modelDistribution).reduce((sum, share) => sum + share, 0);
    assert.ok(Math.abs(total - 1) < 1e-9, `sum ${total}`);
  });

  test('the condition lists: six scale-up triggers, three scale-down', () => {
    assert.deepEqual(
      [...SCALE_UP_CONDITIONS],
      [
        'turbo_queue_depth',
        'fast_queue_depth',
        'relax_queue_depth',
        'fast_avg_wait',
        'relax_avg_wait',
        'predicted_traffic_high',
      ],
    );
    assert.deepEqual([...SCALE_DOWN_CONDITIONS], ['all_queues_short', 'gpu_utilization_low', 'predicted_traffic_low']);
  });
});

describe('decideScale: scale-up triggers', () => {
  interface UpRow {
    readonly condition: Condition;
    readonly gpu: 'h100' | 'a10g';
    /** The seed's duration. */
    readonly forMs: number;
    readonly above: Overrides;
    readonly atThreshold: Overrides;
  }
  // The trigger fleet is h100 8 or a10g 30 (above their floors of 5 and 15); the other fleet sits quiet at its floor.
  const rows: UpRow[] = [
    {
      condition: 'turbo_queue_depth',
      gpu: 'h100',
      forMs: 30 * SECOND,
      above: { queueDepth: 11 },
      atThreshold: { queueDepth: 10 },
    },
    {
      condition: 'fast_queue_depth',
      gpu: 'a10g',
      forMs: 60 * SECOND,
      above: { queueDepth: 51 },
      atThreshold: { queueDepth: 50 },
    },
    {
      condition: 'relax_queue_depth',
      gpu: 'a10g',
      forMs: 120 * SECOND,
      above: { relaxDepth: 501 },
      atThreshold: { relaxDepth: 500 },
    },
    {
      condition: 'relax_queue_depth',
      gpu: 'h100',
      forMs: 120 * SECOND,
      above: { relaxDepth: 501 },
      atThreshold: { relaxDepth: 500 },
    },
    {
      condition: 'fast_avg_wait',
      gpu: 'a10g',
      forMs: 60 * SECOND,
      above: { avgWaitS: 15.1 },
      atThreshold: { avgWaitS: 15 },
    },
    {
      condition: 'relax_avg_wait',
      gpu: 'a10g',
      forMs: 120 * SECOND,
      above: { relaxAvgWaitS: 300.1 },
      atThreshold: { relaxAvgWaitS: 300 },
    },
    {
      condition: 'relax_avg_wait',
      gpu: 'h100',
      forMs: 120 * SECOND,
      above: { relaxAvgWaitS: 300.1 },
      atThreshold: { relaxAvgWaitS: 300 },
    },
    // predicted_traffic > current_capacity * 0.8, at once: a10g 30 -> 24, h100 8 -> 6.4.
    {
      condition: 'predicted_traffic_high',
      gpu: 'a10g',
      forMs: 0,
      above: { predictedDemand: 24.1 },
      atThreshold: { predictedDemand: 24 },
    },
    {
      condition: 'predicted_traffic_high',
      gpu: 'h100',
      forMs: 0,
      above: { predictedDemand: 6.5 },
      atThreshold: { predictedDemand: 6.4 },
    },
  ];
  const pool = (row: UpRow, o: Overrides): FleetSignals[] =>
    row.gpu === 'h100' ? [h100(8, o), a10g(15)] : [h100(5), a10g(30, o)];
  const from = (row: UpRow): number => (row.gpu === 'h100' ? 8 : 30);
  const other = (row: UpRow): GpuType => (row.gpu === 'h100' ? 'a10g' : 'h100');

  for (const row of rows) {
    const label = `${row.condition} on ${row.gpu}`;
    test(`${label}: just above its threshold for exactly ${row.forMs / SECOND} s scales up by 5`, () => {
      const { decisions } = runSteps(NO_SCHEDULE, heldFor(pool(row, row.above), T0, row.forMs));
      const d = pick(decisions, row.gpu);
      assert.equal(d.action, 'up', d.reason);
      assert.equal(d.from, from(row));
      assert.equal(d.to, from(row) + 5);
      assert.ok(d.fired.includes(row.condition), `fired: ${d.fired.join(', ')}`);
      assert.equal(pick(decisions, other(row)).action, 'hold');
    });

    if (row.forMs > 0) {
      test(`${label}: above its threshold for one tick (1 s) less than ${row.forMs / SECOND} s holds`, () => {
        const { decisions } = runSteps(NO_SCHEDULE, heldFor(pool(row, row.above), T0, row.forMs - SECOND));
        const d = pick(decisions, row.gpu);
        assert.equal(d.action, 'hold', d.reason);
        assert.equal(d.to, from(row));
        assert.ok(!d.fired.includes(row.condition), `fired: ${d.fired.join(', ')}`);
        assert.match(d.reason, /^waiting: /);
      });
    }

    test(`${label}: at its threshold (not above) for twice its duration holds`, () => {
      const { decisions } = runSteps(
        NO_SCHEDULE,
        heldFor(pool(row, row.atThreshold), T0, Math.max(2 * row.forMs, 10 * SECOND)),
      );
      const d = pick(decisions, row.gpu);
      assert.equal(d.action, 'hold', d.reason);
      assert.equal(d.to, from(row));
      assert.ok(!d.fired.includes(row.condition), `fired: ${d.fired.join(', ')}`);
    });
  }

  // Each queue and wait trigger belongs to its tier's fleets: turbo's queue to the turbo fleet (h100), fast's queue
  // and wait to the others.
  const wrongFleet: { name: string; fleets: FleetSignals[]; gpu: GpuType; durationMs: number; notFired: Condition }[] =
    [
      {
        name: 'a queue of 11 on a10g for 30 s is no turbo trigger',
        fleets: [h100(5), a10g(30, { queueDepth: 11 })],
        gpu: 'a10g',
        durationMs: 30 * SECOND,
        notFired: 'turbo_queue_depth',
      },
      {
        name: 'a queue of 51 on h100 for 60 s is no fast trigger',
        fleets: [h100(8, { queueDepth: 51 }), a10g(15)],
        gpu: 'h100',
        durationMs: 60 * SECOND,
        notFired: 'fast_queue_depth',
      },
      {
        name: 'a wait of 16 s on h100 for 60 s is no fast-wait trigger',
        fleets: [h100(8, { avgWaitS: 16 }), a10g(15)],
        gpu: 'h100',
        durationMs: 60 * SECOND,
        notFired: 'fast_avg_wait',
      },
    ];
  for (const row of wrongFleet) {
    test(row.name, () => {
      const { decisions } = runSteps(NO_SCHEDULE, heldFor(row.fleets, T0, row.durationMs));
      const d = pick(decisions, row.gpu);
      assert.ok(!d.fired.includes(row.notFired), `fired: ${d.fired.join(', ')}`);
      if (row.notFired !== 'fast_queue_depth') assert.equal(d.action, 'hold', d.reason);
    });
  }

  test('a queue of 51 on h100 is a turbo trigger (> 10) at 30 s', () => {
    const { decisions } = runSteps(NO_SCHEDULE, heldFor([h100(8, { queueDepth: 51 }), a10g(15)], T0, 30 * SECOND));
    const d = pick(decisions, 'h100');
    assert.deepEqual([d.action, d.to, [...d.fired]], ['up', 13, ['turbo_queue_depth']]);
  });

  test('a condition that lapses for one observation starts its clock again', () => {
    const busy = [h100(8, { queueDepth: 11 }), a10g(15)];
    const lapse = [h100(8, { queueDepth: 10 }), a10g(15)];
    const steps = [
      ...heldFor(busy, T0, 20 * SECOND),
      { at: T0 + 21 * SECOND, fleets: lapse },
      ...heldFor(busy, T0 + 22 * SECOND, 20 * SECOND),
    ];
    const first = runSteps(NO_SCHEDULE, steps);
    assert.equal(pick(first.decisions, 'h100').action, 'hold', 'only 20 s since the lapse');
    const later = runSteps(NO_SCHEDULE, heldFor(busy, T0 + 52 * SECOND, 0), first.memory);
    assert.equal(pick(later.decisions, 'h100').action, 'up', '30 s since the lapse');
  });

  test('the memory carries when a holding condition began, and forgets one that stopped', () => {
    const held = runSteps(NO_SCHEDULE, heldFor([h100(8, { queueDepth: 11 }), a10g(15)], T0, 10 * SECOND));
    assert.equal(held.memory.h100?.since.turbo_queue_depth, T0);
    const stopped = runSteps(NO_SCHEDULE, heldFor([h100(8), a10g(15)], T0 + 11 * SECOND, 0), held.memory);
    assert.equal(stopped.memory.h100?.since.turbo_queue_depth, undefined);
  });
});

describe('decideScale: scale-down', () => {
  interface DownRow {
    readonly name: string;
    readonly quiet: Overrides;
    readonly durationMs: number;
    /** a10g's replicas after the last observation (from 30, floor 15). */
    readonly to: number;
    readonly fired?: readonly Condition[];
  }
  const rows: DownRow[] = [
    {
      name: 'queues < 20 and utilization < 30% for 10 min: -3',
      quiet: { queueDepth: 19, relaxDepth: 19, utilization: 0.29 },
      durationMs: 10 * MINUTE,
      to: 27,
      fired: ['all_queues_short', 'gpu_utilization_low'],
    },
    {
      name: 'queues < 20 and utilization < 30% for 10 min less 1 s: hold',
      quiet: { queueDepth: 19, relaxDepth: 19, utilization: 0.29 },
      durationMs: 10 * MINUTE - SECOND,
      to: 30,
    },
    {
      name: 'queues < 20 for 10 min and forecast < 0.5 x capacity: -3',
      quiet: { predictedDemand: 14.9 },
      durationMs: 10 * MINUTE,
      to: 27,
      fired: ['all_queues_short', 'predicted_traffic_low'],
    },
    {
      name: 'queues < 20 for 10 min less 1 s and forecast < 0.5 x capacity: hold',
      quiet: { predictedDemand: 14.9 },
      durationMs: 10 * MINUTE - SECOND,
      to: 30,
    },
    {
      name: 'queues short alone, the fleet busy (utilization 50%), for 10 min: hold (header: short queues alone are no idle)',
      quiet: { utilization: 0.5 },
      durationMs: 10 * MINUTE,
      to: 30,
    },
    {
      name: 'queues short alone, utilization and forecast unknown, for 20 min: hold',
      quiet: {},
      durationMs: 20 * MINUTE,
      to: 30,
    },
    {
      name: 'utilization low but the fast queue at 20 (not below) for 20 min: hold',
      quiet: { queueDepth: 20, utilization: 0.1 },
      durationMs: 20 * MINUTE,
      to: 30,
    },
    {
      name: 'utilization low but the relax lane at 20 (not below) for 20 min: hold',
      quiet: { relaxDepth: 20, utilization: 0.1 },
      durationMs: 20 * MINUTE,
      to: 30,
    },
    {
      name: 'queues short and utilization at 30% (not below) for 20 min: hold',
      quiet: { utilization: 0.3 },
      durationMs: 20 * MINUTE,
      to: 30,
    },
    {
      name: 'queues short and the forecast at 0.5 x capacity (not below) for 20 min: hold',
      quiet: { predictedDemand: 15 },
      durationMs: 20 * MINUTE,
      to: 30,
    },
    {
      name: 'forecast low alone, the queue at 25, for 20 min: hold',
      quiet: { queueDepth: 25, predictedDemand: 1, utilization: 0.9 },
      durationMs: 20 * MINUTE,
      to: 30,
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const { decisions } = runSteps(
        NO_SCHEDULE,
        heldFor([h100(5), a10g(30, row.quiet)], T0, row.durationMs, 5 * SECOND),
      );
      const d = pick(decisions, 'a10g');
      assert.equal(d.to, row.to, d.reason);
      assert.equal(d.action, row.to < 30 ? 'down' : 'hold');
      for (const c of row.fired ?? []) assert.ok(d.fired.includes(c), `fired: ${d.fired.join(', ')}`);
      assert.equal(pick(decisions, 'h100').action, 'hold', 'h100 is at its floor');
    });
  }

  test('utilization low for only 9 of the 10 quiet minutes: hold; a minute later: -3', () => {
    const quietOnly = [h100(5), a10g(30)];
    const idle = [h100(5), a10g(30, { utilization: 0.1 })];
    const steps = [
      ...heldFor(quietOnly, T0, MINUTE - 5 * SECOND, 5 * SECOND),
      ...heldFor(idle, T0 + MINUTE, 9 * MINUTE),
    ];
    const atTen = runSteps(NO_SCHEDULE, steps);
    assert.equal(pick(atTen.decisions, 'a10g').action, 'hold');
    const atEleven = runSteps(NO_SCHEDULE, heldFor(idle, T0 + 10 * MINUTE + SECOND, MINUTE - SECOND), atTen.memory);
    assert.deepEqual([pick(atEleven.decisions, 'a10g').action, pick(atEleven.decisions, 'a10g').to], ['down', 27]);
  });

  // Quiet and idle for 10 min, and at the last observation a scale-up condition begins to hold (not yet fired).
  const blocking: {
    name: string;
    fleets: (o: Overrides) => FleetSignals[];
    gpu: GpuType;
    from: number;
    last: Overrides;
  }[] = [
    {
      name: 'a fast wait of 16 s',
      fleets: (o) => [h100(5), a10g(30, o)],
      gpu: 'a10g',
      from: 30,
      last: { avgWaitS: 16 },
    },
    {
      name: 'a relax wait of 301 s',
      fleets: (o) => [h100(5), a10g(30, o)],
      gpu: 'a10g',
      from: 30,
      last: { relaxAvgWaitS: 301 },
    },
    {
      name: 'a turbo queue of 11 (still < 20: the queues are short too)',
      fleets: (o) => [h100(11, o), a10g(15)],
      gpu: 'h100',
      from: 11,
      last: { queueDepth: 11 },
    },
  ];
  for (const row of blocking) {
    test(`never down while a scale-up condition holds: ${row.name}`, () => {
      const idle = { utilization: 0.1 };
      const steps = [
        ...heldFor(row.fleets(idle), T0, 10 * MINUTE - 5 * SECOND, 5 * SECOND),
        { at: T0 + 10 * MINUTE, fleets: row.fleets({ ...idle, ...row.last }) },
      ];
      const d = pick(runSteps(NO_SCHEDULE, steps).decisions, row.gpu);
      assert.ok(d.fired.includes('all_queues_short') && d.fired.includes('gpu_utilization_low'), d.fired.join());
      assert.equal(d.action, 'hold', d.reason);
      assert.equal(d.to, row.from);
      assert.match(d.reason, /^waiting: /);
    });
  }

  // Never below the fleet's floor: its tier minimums, or the schedule's share of its peak.
  const floors: { name: string; policy: AutoscalePolicy; fleet: FleetSignals; start: number; to: number }[] = [
    { name: 'a10g 16 -> 15 (fast 10 + relax 5)', policy: NO_SCHEDULE, fleet: a10g(16), start: T0, to: 15 },
    { name: 'a10g 15 holds', policy: NO_SCHEDULE, fleet: a10g(15), start: T0, to: 15 },
    { name: 'h100 6 -> 5 (turbo 5)', policy: NO_SCHEDULE, fleet: h100(6), start: T0, to: 5 },
    { name: 'h100 5 holds', policy: NO_SCHEDULE, fleet: h100(5), start: T0, to: 5 },
    {
      name: 'a10g 20 of peak 60 at 03:00 (30%: 18) -> 18',
      policy: SEED_001_POLICY,
      fleet: a10g(20, { peakReplicas: 60 }),
      start: utc(3),
      to: 18,
    },
    {
      name: 'a10g 40 of peak 40 at 14:00 (maintain 100%) holds',
      policy: SEED_001_POLICY,
      fleet: a10g(40, { peakReplicas: 40 }),
      start: utc(14),
      to: 40,
    },
  ];
  for (const row of floors) {
    test(`never below the floor: ${row.name}`, () => {
      const idle: FleetSignals = { ...row.fleet, utilization: 0 };
      const other = row.fleet.gpuType === 'h100' ? a10g(15) : h100(5);
      const { decisions } = runSteps(row.policy, heldFor([idle, other], row.start, 20 * MINUTE, 10 * SECOND));
      const d = pick(decisions, row.fleet.gpuType);
      assert.equal(d.to, row.to, d.reason);
      assert.equal(d.action, row.to < row.fleet.replicas ? 'down' : 'hold');
    });
  }

  test('a falling schedule lowers only the floor: at 22:00 (70%) a10g 40 of peak 40 comes down 3 at a time', () => {
    const history = simulate(
      SEED_001_POLICY,
      [h100(5, { peakReplicas: 5 }), a10g(40, { peakReplicas: 40, utilization: 0.1 })],
      range(utc(22), utc(22, 40), 10 * SECOND),
    );
    const downs = history.flatMap(({ at, decisions }) =>
      decisions.filter((d) => d.action === 'down').map((d) => [(at - utc(22)) / MINUTE, d.gpuType, d.from, d.to]),
    );
    assert.deepEqual(downs, [
      [10, 'a10g', 40, 37],
      [15, 'a10g', 37, 34],
      [20, 'a10g', 34, 31],
      [25, 'a10g', 31, 28],
    ]);
  });
});

describe('decideScale: constraints', () => {
  test('cooldown_up: the second scale-up comes 120 s after the first, not before', () => {
    const history = simulate(NO_SCHEDULE, [h100(8), a10g(15)], range(T0, T0 + 150 * SECOND, SECOND), (_at, f) =>
      f.gpuType === 'h100' ? { ...f, queueDepth: 11 } : f,
    );
    const ups = history.flatMap(({ at, decisions }) =>
      decisions.filter((d) => d.action === 'up').map((d) => [(at - T0) / SECOND, d.gpuType, d.from, d.to]),
    );
    assert.deepEqual(ups, [
      [30, 'h100', 8, 13],
      [150, 'h100', 13, 18],
    ]);
    const held = pick(history.find((h) => h.at === T0 + 149 * SECOND)?.decisions ?? [], 'h100');
    assert.match(held.reason, /scale-up cooldown/);
  });

  // The turbo trigger has held 30 s; the fleet's memory says when it last stepped.
  const upMemory: { name: string; memory: Omit<FleetMemory, 'since'>; action: 'up' | 'hold' }[] = [
    { name: 'never scaled', memory: {}, action: 'up' },
    {
      name: 'scaled up 119 s ago: held',
      memory: { lastUpAt: T0 - 119 * SECOND, lastStepAt: T0 - 119 * SECOND },
      action: 'hold',
    },
    {
      name: 'scaled up 120 s ago',
      memory: { lastUpAt: T0 - 120 * SECOND, lastStepAt: T0 - 120 * SECOND },
      action: 'up',
    },
    {
      name: 'scaled down 1 s ago (cooldown_up counts scale-ups only)',
      memory: { lastStepAt: T0 - SECOND },
      action: 'up',
    },
  ];
  for (const row of upMemory) {
    test(`cooldown_up: ${row.name}`, () => {
      const memory: AutoscaleMemory = { h100: { since: { turbo_queue_depth: T0 - 30 * SECOND }, ...row.memory } };
      const { decisions, memory: next } = decideScale(NO_SCHEDULE, [h100(8, { queueDepth: 11 }), a10g(15)], memory, T0);
      const d = pick(decisions, 'h100');
      assert.equal(d.action, row.action, d.reason);
      assert.equal(d.to, row.action === 'up' ? 13 : 8);
      if (row.action === 'hold') assert.match(d.reason, /scale-up cooldown/);
      assert.equal(next.h100?.lastUpAt, row.action === 'up' ? T0 : row.memory.lastUpAt);
    });
  }

  // a10g 30 has been quiet and idle for 10 min; the fleet's memory says when it last stepped.
  const downMemory: { name: string; memory: Omit<FleetMemory, 'since'>; action: 'down' | 'hold' }[] = [
    { name: 'never scaled', memory: {}, action: 'down' },
    { name: 'scaled down 299 s ago: held', memory: { lastStepAt: T0 - 299 * SECOND }, action: 'hold' },
    { name: 'scaled down 300 s ago', memory: { lastStepAt: T0 - 300 * SECOND }, action: 'down' },
    {
      name: 'scaled up 299 s ago: held (no shrinking right after growing)',
      memory: { lastUpAt: T0 - 299 * SECOND, lastStepAt: T0 - 299 * SECOND },
      action: 'hold',
    },
    {
      name: 'scaled up 300 s ago',
      memory: { lastUpAt: T0 - 300 * SECOND, lastStepAt: T0 - 300 * SECOND },
      action: 'down',
    },
  ];
  for (const row of downMemory) {
    test(`cooldown_down: ${row.name}`, () => {
      const since = { all_queues_short: T0 - 10 * MINUTE, gpu_utilization_low: T0 - 10 * MINUTE };
      const memory: AutoscaleMemory = { a10g: { since, ...row.memory } };
      const { decisions } = decideScale(NO_SCHEDULE, [h100(5), a10g(30, { utilization: 0.1 })], memory, T0);
      const d = pick(decisions, 'a10g');
      assert.equal(d.action, row.action, d.reason);
      assert.equal(d.to, row.action === 'down' ? 27 : 30);
      if (row.action === 'hold') assert.match(d.reason, /scale-down cooldown/);
    });
  }

  test('cooldown_down: an idle a10g 30 steps down 3 every 300 s to its floor of 15, then holds', () => {
    const history = simulate(
      NO_SCHEDULE,
      [h100(5), a10g(30, { utilization: 0.1 })],
      range(T0, T0 + 40 * MINUTE, 10 * SECOND),
    );
    const downs = history.flatMap(({ at, decisions }) =>
      decisions.filter((d) => d.action === 'down').map((d) => [(at - T0) / MINUTE, d.gpuType, d.from, d.to]),
    );
    assert.deepEqual(downs, [
      [10, 'a10g', 30, 27],
      [15, 'a10g', 27, 24],
      [20, 'a10g', 24, 21],
      [25, 'a10g', 21, 18],
      [30, 'a10g', 18, 15],
    ]);
    assert.ok(history.every(({ decisions }) => poolSize(decisions) >= 20));
  });

  const increments: { name: string; policy: AutoscalePolicy; up: number; down: number }[] = [
    { name: 'seed: +5 and -3', policy: NO_SCHEDULE, up: 5, down: 3 },
    {
      name: 'the policy file sets them: +2 and -1',
      policy: {
        ...NO_SCHEDULE,
        constraints: { ...NO_SCHEDULE.constraints, scaleUpIncrement: 2, scaleDownIncrement: 1 },
      },
      up: 2,
      down: 1,
    },
  ];
  for (const row of increments) {
    test(`increments: ${row.name}`, () => {
      const up = decideScale(row.policy, [h100(5), a10g(30, { predictedDemand: 30 })], {}, T0);
      assert.equal(pick(up.decisions, 'a10g').to, 30 + row.up);
      const since = { all_queues_short: T0 - 10 * MINUTE };
      const down = decideScale(row.policy, [h100(5), a10g(30, { predictedDemand: 1 })], { a10g: { since } }, T0);
      assert.equal(pick(down.decisions, 'a10g').to, 30 - row.down);
    });
  }

  // Every fleet listed with "up" has a forecast of its whole size (> 0.8): it fires at once.
  const maxRows: {
    name: string;
    fleets: [GpuType, number, 'up' | 'quiet'][];
    expected: Partial<Record<GpuType, [action: string, to: number]>>;
  }[] = [
    {
      name: 'a10g 140 + h100 50 both up: 145 + 55 = 200, in full',
      fleets: [
        ['a10g', 140, 'up'],
        ['h100', 50, 'up'],
      ],
      expected: { a10g: ['up', 145], h100: ['up', 55] },
    },
    {
      name: 'a10g 150 + h100 43 both up (203): a10g trimmed to 152, the turbo fleet whole',
      fleets: [
        ['a10g', 150, 'up'],
        ['h100', 43, 'up'],
      ],
      expected: { a10g: ['up', 152], h100: ['up', 48] },
    },
    {
      name: 'a10g 150 + h100 47 both up (207): a10g held, h100 trimmed to 50',
      fleets: [
        ['a10g', 150, 'up'],
        ['h100', 47, 'up'],
      ],
      expected: { a10g: ['hold', 150], h100: ['up', 50] },
    },
    {
      name: 'a10g 155 + h100 45 (200 already) both up: both held',
      fleets: [
        ['a10g', 155, 'up'],
        ['h100', 45, 'up'],
      ],
      expected: { a10g: ['hold', 155], h100: ['hold', 45] },
    },
    {
      name: 'a10g 160 quiet + h100 38 up: h100 trimmed to 40',
      fleets: [
        ['a10g', 160, 'quiet'],
        ['h100', 38, 'up'],
      ],
      expected: { a10g: ['hold', 160], h100: ['up', 40] },
    },
    {
      name: 'a10g 100 + l4 60 + h100 38 all up (213): the others held before the turbo fleet is trimmed',
      fleets: [
        ['a10g', 100, 'up'],
        ['l4', 60, 'up'],
        ['h100', 38, 'up'],
      ],
      expected: { a10g: ['hold', 100], l4: ['hold', 60], h100: ['up', 40] },
    },
    {
      name: 'a10g 198 alone up: 200',
      fleets: [['a10g', 198, 'up']],
      expected: { a10g: ['up', 200] },
    },
  ];
  for (const row of maxRows) {
    test(`max_workers 200: ${row.name}`, () => {
      const fleets = row.fleets.map(([gpu, replicas, load]) =>
        signals(gpu, replicas, load === 'up' ? { predictedDemand: replicas } : {}),
      );
      const { decisions } = decideScale(NO_SCHEDULE, fleets, {}, T0);
      for (const [gpu, [action, to]] of Object.entries(row.expected)) {
        const d = pick(decisions, gpu as GpuType);
        assert.deepEqual([d.action, d.to], [action, to], `${gpu}: ${d.reason}`);
      }
      assert.ok(poolSize(decisions) <= 200, `pool ${poolSize(decisions)}`);
    });
  }

  const zeroTierMinimums: AutoscalePolicy = { ...NO_SCHEDULE, tierMinimums: { turbo: 0, fast: 0, relax: 0 } };
  const minRows: {
    name: string;
    policy: AutoscalePolicy;
    fleets: FleetSignals[];
    memory?: AutoscaleMemory;
    expected: Partial<Record<GpuType, [action: string, to: number]>>;
  }[] = [
    {
      name: 'h100 5 + a10g 15 = 20: both hold',
      policy: NO_SCHEDULE,
      fleets: [h100(5), a10g(15)],
      expected: { h100: ['hold', 5], a10g: ['hold', 15] },
    },
    {
      name: 'no tier minimums, h100 2 + a10g 10 = 12: the fast fleet (a10g) raised to 18',
      policy: zeroTierMinimums,
      fleets: [a10g(10), h100(2)],
      expected: { h100: ['hold', 2], a10g: ['up', 18] },
    },
    {
      name: 'no tier minimums, l4 3 alone: raised to 20',
      policy: zeroTierMinimums,
      fleets: [signals('l4', 3)],
      expected: { l4: ['up', 20] },
    },
    {
      name: 'h100 4 held in its scale-up cooldown + a10g 15 = 19: a10g raised to 16',
      policy: NO_SCHEDULE,
      fleets: [h100(4), a10g(15)],
      memory: { h100: { since: {}, lastUpAt: T0 - 10 * SECOND, lastStepAt: T0 - 10 * SECOND } },
      expected: { h100: ['hold', 4], a10g: ['up', 16] },
    },
  ];
  for (const row of minRows) {
    test(`min_workers 20: ${row.name}`, () => {
      const { decisions } = decideScale(row.policy, row.fleets, row.memory ?? {}, T0);
      for (const [gpu, [action, to]] of Object.entries(row.expected)) {
        const d = pick(decisions, gpu as GpuType);
        assert.deepEqual([d.action, d.to], [action, to], `${gpu}: ${d.reason}`);
      }
      assert.equal(poolSize(decisions), 20);
    });
  }

  // A scale-down that the pool minimum cuts short is still a scale-down (or no step at all): never an "up" whose
  // `to` is not above its `from`, which would also start the fleet's scale-up cooldown.
  const cutShort: { name: string; fleets: FleetSignals[]; memory: AutoscaleMemory; action: string; to: number }[] = [
    {
      name: 'a10g 21 + l4 0 (a pool without h100), a10g idle: 21 -> 20 is a down',
      fleets: [a10g(21, { utilization: 0.1 }), signals('l4', 0)],
      memory: { a10g: { since: { all_queues_short: T0 - 10 * MINUTE, gpu_utilization_low: T0 - 10 * MINUTE } } },
      action: 'down',
      to: 20,
    },
    {
      name: 'h100 4 in its scale-up cooldown + a10g 16 idle: a10g stays at 16, a hold',
      fleets: [h100(4), a10g(16, { utilization: 0.1 })],
      memory: {
        h100: { since: {}, lastUpAt: T0 - 10 * SECOND, lastStepAt: T0 - 10 * SECOND },
        a10g: { since: { all_queues_short: T0 - 10 * MINUTE, gpu_utilization_low: T0 - 10 * MINUTE } },
      },
      action: 'hold',
      to: 16,
    },
  ];
  for (const row of cutShort) {
    test(`min_workers 20 cuts a scale-down short: ${row.name}`, () => {
      const { decisions } = decideScale(NO_SCHEDULE, row.fleets, row.memory, T0);
      assert.equal(poolSize(decisions), 20);
      const d = pick(decisions, 'a10g');
      assert.equal(d.to, row.to, d.reason);
      assert.equal(d.action, row.action, `${d.from} -> ${d.to} labelled ${d.action}: ${d.reason}`);
    });
  }
});

describe('tier minimums', () => {
  const minimumRows: [
    name: string,
    policy: Pick<AutoscalePolicy, 'tierMinimums' | 'tierFleets'>,
    fleet: GpuType,
    expected: number,
  ][] = [
    ['seed: h100 holds turbo 5', SEED_001_POLICY, 'h100', 5],
    ['seed: a10g holds fast 10 + relax 5', SEED_001_POLICY, 'a10g', 15],
    ...GPU_TYPES.filter((g) => g !== 'h100' && g !== 'a10g').map((g): [string, AutoscalePolicy, GpuType, number] => [
      `seed: ${g} holds no tier`,
      SEED_001_POLICY,
      g,
      0,
    ]),
    [
      'fast moved to l4: l4 10, a10g 5',
      { ...SEED_001_POLICY, tierFleets: { turbo: 'h100', fast: 'l4', relax: 'a10g' } },
      'l4',
      10,
    ],
    [
      'fast moved to l4: a10g keeps relax 5',
      { ...SEED_001_POLICY, tierFleets: { turbo: 'h100', fast: 'l4', relax: 'a10g' } },
      'a10g',
      5,
    ],
  ];
  for (const [name, policy, fleet, expected] of minimumRows) {
    test(`fleetMinimum: ${name}`, () => assert.equal(fleetMinimum(policy, fleet), expected));
  }

  const raiseRows: { name: string; fleets: FleetSignals[]; expected: Partial<Record<GpuType, number>> }[] = [
    { name: 'h100 at 0 is raised to 5', fleets: [h100(0), a10g(15)], expected: { h100: 5, a10g: 15 } },
    { name: 'a10g at 0 is raised to 15', fleets: [h100(5), a10g(0)], expected: { h100: 5, a10g: 15 } },
    { name: 'both at 0: 5 and 15', fleets: [h100(0), a10g(0)], expected: { h100: 5, a10g: 15 } },
    { name: 'h100 at 3 is raised to 5, not by +5', fleets: [h100(3), a10g(15)], expected: { h100: 5, a10g: 15 } },
    {
      name: 'h100 at 3 with a turbo trigger: +5 (8) is above the floor',
      fleets: [h100(3, { predictedDemand: 3 }), a10g(15)],
      expected: { h100: 8, a10g: 15 },
    },
  ];
  for (const row of raiseRows) {
    test(`decideScale: ${row.name}`, () => {
      const { decisions } = decideScale(NO_SCHEDULE, row.fleets, {}, T0);
      for (const [gpu, to] of Object.entries(row.expected)) {
        const d = pick(decisions, gpu as GpuType);
        assert.equal(d.to, to, `${gpu}: ${d.reason}`);
        assert.equal(d.action, to > d.from ? 'up' : 'hold');
      }
    });
  }
});

describe('schedule (pre-scaling, UTC)', () => {
  const shareRows: [at: string, nowMs: number, share: number][] = [
    ['00:00 (22:00 still in force)', utc(0), 0.7],
    ['01:59 (wraps from 22:00)', utc(1, 59), 0.7],
    ['01:59:59', utc(1, 59, 59), 0.7],
    ['02:00', utc(2), 0.3],
    ['05:59', utc(5, 59), 0.3],
    ['06:00', utc(6), 0.5],
    ['09:59', utc(9, 59), 0.5],
    ['10:00', utc(10), 1],
    ['13:59', utc(13, 59), 1],
    ['14:00 (maintain)', utc(14), 1],
    ['21:59', utc(21, 59), 1],
    ['22:00', utc(22), 0.7],
    ['23:59', utc(23, 59), 0.7],
    ['06:00 on another day', Date.UTC(2026, 5, 15, 6, 0), 0.5],
  ];
  for (const [at, nowMs, share] of shareRows) {
    test(`scheduledShare at ${at}: ${share}`, () => assert.equal(scheduledShare(SEED_001_POLICY, nowMs), share));
  }

  test('scheduledShare sorts the entries and wraps with the latest one', () => {
    const shuffled = { schedule: [...SEED_001_POLICY.schedule].reverse() };
    assert.deepEqual(
      [utc(1, 59), utc(2), utc(6), utc(10), utc(22)].map((t) => scheduledShare(shuffled, t)),
      [0.7, 0.3, 0.5, 1, 0.7],
    );
    assert.equal(scheduledShare(NO_SCHEDULE, utc(10)), 0);
  });

  const prescaleRows: {
    name: string;
    at: number;
    a10g: FleetSignals;
    memory?: AutoscaleMemory;
    expected: [action: string, to: number];
  }[] = [
    {
      name: 'a10g 15 of peak 20 at 10:00 (100%): raised to 20',
      at: utc(10),
      a10g: a10g(15, { peakReplicas: 20 }),
      expected: ['up', 20],
    },
    {
      name: 'a10g 16 of peak 40 at 10:00: raised to 40 in one step',
      at: utc(10),
      a10g: a10g(16, { peakReplicas: 40 }),
      expected: ['up', 40],
    },
    {
      name: 'a10g 16 of peak 40 at 09:59 (50%: 20): raised to 20',
      at: utc(9, 59),
      a10g: a10g(16, { peakReplicas: 40 }),
      expected: ['up', 20],
    },
    {
      name: 'a10g 15 of peak 50 at 06:00 (50%): raised to 25',
      at: utc(6),
      a10g: a10g(15, { peakReplicas: 50 }),
      expected: ['up', 25],
    },
    {
      name: 'a10g 15 of peak 41 at 06:00 (50%: 20.5, rounded up): raised to 21',
      at: utc(6),
      a10g: a10g(15, { peakReplicas: 41 }),
      expected: ['up', 21],
    },
    {
      name: 'a10g 15 of peak 50 at 05:59 (30%: 15): holds',
      at: utc(5, 59),
      a10g: a10g(15, { peakReplicas: 50 }),
      expected: ['hold', 15],
    },
    {
      name: 'a10g 15 of peak 20 at 10:00, scaled up 119 s ago: held by the cooldown',
      at: utc(10),
      a10g: a10g(15, { peakReplicas: 20 }),
      memory: { a10g: { since: {}, lastUpAt: utc(10) - 119 * SECOND, lastStepAt: utc(10) - 119 * SECOND } },
      expected: ['hold', 15],
    },
    {
      name: 'a10g 16 of peak 40 at 10:00, scaled up 120 s ago: raised to 40',
      at: utc(10),
      a10g: a10g(16, { peakReplicas: 40 }),
      memory: { a10g: { since: {}, lastUpAt: utc(10) - 120 * SECOND, lastStepAt: utc(10) - 120 * SECOND } },
      expected: ['up', 40],
    },
  ];
  for (const row of prescaleRows) {
    test(`pre-scaling: ${row.name}`, () => {
      const { decisions } = decideScale(
        SEED_001_POLICY,
        [h100(5, { peakReplicas: 5 }), row.a10g],
        row.memory ?? {},
        row.at,
      );
      const d = pick(decisions, 'a10g');
      assert.deepEqual([d.action, d.to], row.expected, d.reason);
      assert.match(d.reason, row.expected[0] === 'up' ? /below its floor/ : /cooldown|steady/);
      assert.equal(pick(decisions, 'h100').action, 'hold');
    });
  }

  test('pre-scaling: h100 6 of peak 10 at 10:00 is raised to 10 (not +5 to 11)', () => {
    const { decisions } = decideScale(SEED_001_POLICY, [h100(6, { peakReplicas: 10 }), a10g(15)], {}, utc(10));
    assert.deepEqual([pick(decisions, 'h100').action, pick(decisions, 'h100').to], ['up', 10]);
  });
});

describe('parseAutoscalePolicy', () => {
  test('{} is seed 001', () => assert.deepEqual(parseAutoscalePolicy({}), SEED_001_POLICY));

  test('a section given replaces that section; the others stay the seed', () => {
    const constraints = { ...SEED_001_POLICY.constraints, maxWorkers: 300, cooldownUpMs: 60_000 };
    const schedule = [{ at: '08:00', share: 0.4 }];
    const policy = parseAutoscalePolicy({ constraints, schedule });
    assert.deepEqual(policy, { ...SEED_001_POLICY, constraints, schedule });
  });

  const invalid: [name: string, raw: unknown, field: string][] = [
    [
      'a negative threshold',
      { scaleUp: { ...SEED_001_POLICY.scaleUp, turboQueueDepth: { threshold: -1, forMs: 30_000 } } },
      'scaleUp.turboQueueDepth.threshold',
    ],
    [
      'a negative duration',
      { scaleDown: { ...SEED_001_POLICY.scaleDown, allQueuesBelow: { threshold: 20, forMs: -1 } } },
      'scaleDown.allQueuesBelow.forMs',
    ],
    ['a schedule time of 25:00', { schedule: [{ at: '25:00', share: 0.5 }] }, 'schedule.0.at'],
    ['a schedule share of 1.5', { schedule: [{ at: '10:00', share: 1.5 }] }, 'schedule.0.share'],
    ['an empty schedule', { schedule: [] }, 'schedule'],
    [
      'minWorkers above maxWorkers',
      { constraints: { ...SEED_001_POLICY.constraints, minWorkers: 201 } },
      'constraints.minWorkers',
    ],
    ['an unknown top-level key', { cooldown: 5 }, 'cooldown'],
    ['an unknown key in a section', { constraints: { ...SEED_001_POLICY.constraints, warmup: 1 } }, 'warmup'],
    ['a section given in part (each section is whole)', { constraints: { maxWorkers: 300 } }, 'constraints.minWorkers'],
    [
      'an unknown GPU in tierFleets',
      { tierFleets: { ...SEED_001_POLICY.tierFleets, turbo: 'tpu' } },
      'tierFleets.turbo',
    ],
    ['a model share above 1', { modelDistribution: { sdxl: 1.2 } }, 'modelDistribution.sdxl'],
  ];
  for (const [name, raw, field] of invalid) {
    test(`rejects ${name}, naming ${field}`, () => {
      assert.throws(
        () => parseAutoscalePolicy(raw, 'policy.json'),
        (e: unknown) => {
          assert.ok(e instanceof AutoscalePolicyError, String(e));
          assert.equal(e.name, 'AutoscalePolicyError');
          assert.ok(e.message.startsWith('policy.json: '), e.message);
          assert.ok(e.message.includes(field), e.message);
          return true;
        },
      );
    });
  }

  for (const raw of [null, 'seed', 42]) {
    test(`rejects a non-object (${JSON.stringify(raw)})`, () => {
      assert.throws(() => parseAutoscalePolicy(raw), AutoscalePolicyError);
    });
  }
});

describe('a small region: floors stop at what it has', () => {
  test("eu-west's a10g has 9 GPUs and its h100 4: the tier minimums (15, 5) are capped at 9 and 4", () => {
    const { decisions } = decideScale(
      NO_SCHEDULE,
      [h100(0, { peakReplicas: 4 }), a10g(0, { peakReplicas: 9 })],
      {},
      Date.UTC(2026, 0, 1, 12),
    );
    assert.deepEqual(
      decisions.map((d) => [d.gpuType, d.to]),
      [
        ['h100', 4],
        ['a10g', 9],
      ],
    );
  });

  test('the pool minimum (20) stops at the sum of the fleets: 4 + 9 = 13', () => {
    const { decisions } = decideScale(
      { ...NO_SCHEDULE, tierMinimums: { turbo: 0, fast: 0, relax: 0 } },
      [h100(0, { peakReplicas: 4 }), a10g(0, { peakReplicas: 9 })],
      {},
      Date.UTC(2026, 0, 1, 12),
    );
    assert.deepEqual(
      decisions.map((d) => [d.gpuType, d.to]),
      [
        ['h100', 4],
        ['a10g', 9],
      ],
      'a10g (the fast fleet) first, up to its 9, then h100',
    );
  });
});

describe('time of day: the fixed schedule is the fallback for a fleet without a forecast', () => {
  const noon = Date.UTC(2026, 0, 1, 12);
  test('without a forecast, the 10:00-22:00 share of 100% raises a10g from 20 to its peak of 40', () => {
    const [d] = decideScale(SEED_001_POLICY, [a10g(20, { peakReplicas: 40 })], {}, noon).decisions;
    assert.deepEqual([d?.action, d?.to], ['up', 40]);
  });
  test('with a forecast between 0.5 and 0.8 of its capacity, the same fleet holds at 20', () => {
    const [d] = decideScale(SEED_001_POLICY, [a10g(20, { peakReplicas: 40, predictedDemand: 12 })], {}, noon).decisions;
    assert.deepEqual([d?.action, d?.to], ['hold', 20]);
  });
  test('with a forecast above 0.8 of its capacity, it grows by the forecast trigger, +5', () => {
    const [d] = decideScale(SEED_001_POLICY, [a10g(20, { peakReplicas: 40, predictedDemand: 17 })], {}, noon).decisions;
    assert.deepEqual([d?.action, d?.to, d?.fired], ['up', 25, ['predicted_traffic_high']]);
  });
});
