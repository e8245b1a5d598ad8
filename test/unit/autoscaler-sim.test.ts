// The pieces of `npm run simulate:autoscaler` (issue 13, item 3): seed 001's daily curve and the spike, the seeded
// arrivals, the event queue's order, a fleet's priorities and admission, the cooldown checker, and a short window
// around the spike run through every strategy: every arrival refused or served exactly once, the policy's steps
// outside its cooldowns, the static fleet never resized. No processes, no services.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SEED_001_POLICY } from '../../core/autoscale-policy';
import { autoscalerChart } from '../../bench/autoscaler/chart';
import { EventQueue } from '../../bench/autoscaler/events';
import { allFigures } from '../../bench/autoscaler/figures';
import { Fleet, type FleetEvent } from '../../bench/autoscaler/fleet';
import { parseSimulateOptions, windowMs } from '../../bench/autoscaler/options';
import { simulate } from '../../bench/autoscaler/run';
import { percentileOfSorted, Series, shareBelow, sortedValues } from '../../bench/autoscaler/series';
import { coldStartMs, PROVISION_MS, staticPeakSizes, stepsInsideCooldown } from '../../bench/autoscaler/strategies';
import { ArrivalSource, arrivalRate, curveQps, fleetLoads, HOUR_MS, MINUTE_MS } from '../../bench/autoscaler/traffic';

const H = HOUR_MS;

describe('traffic', () => {
  test("the curve is seed 001's: 10 QPS at night, 60 at the peak, linear in between, wrapping at midnight", () => {
    assert.equal(curveQps(0), 10);
    assert.equal(curveQps(3 * H), 10);
    assert.equal(curveQps(5 * H), 12.5);
    assert.equal(curveQps(11 * H), 47.5);
    assert.equal(curveQps(14 * H), 60);
    assert.equal(curveQps(16 * H), 55);
    assert.equal(curveQps(22 * H), 17);
    assert.equal(curveQps(24 * H + 5 * H), 12.5);
  });

  test('the spike is 10x the curve from 16:00 for 2 minutes, and only then', () => {
    assert.equal(arrivalRate(16 * H - 1), curveQps(16 * H - 1));
    assert.equal(arrivalRate(16 * H), 550);
    assert.ok(Math.abs(arrivalRate(16 * H + 90_000) - 10 * curveQps(16 * H + 90_000)) < 1e-9);
    assert.equal(arrivalRate(16 * H + 2 * MINUTE_MS), curveQps(16 * H + 2 * MINUTE_MS));
  });

  test('arrivals are Poisson at the curve rate and the same for the same seed', () => {
    const take = (seed: number): number[] => {
      const source = new ArrivalSource(seed, 0, H);
      const out: number[] = [];
      for (let a = source.next(); a; a = source.next()) out.push(a.atMs);
      return out;
    };
    const a = take(7);
    // 10 QPS for an hour: 36,000, standard deviation 190.
    assert.ok(Math.abs(a.length - 36_000) < 800, `${a.length} arrivals`);
    assert.ok(
      a.every((t, i) => t >= 0 && t < H && (i === 0 || t >= (a[i - 1] ?? 0))),
      'in order, in the window',
    );
    assert.deepEqual(take(7).slice(0, 100), a.slice(0, 100));
    assert.notDeepEqual(take(8).slice(0, 100), a.slice(0, 100));
  });

  test('the static fleet sized for the peak stays within the pool maximum and above the tier minimums', () => {
    const peak = staticPeakSizes(fleetLoads(), SEED_001_POLICY);
    const total = [...peak.values()].reduce((s, x) => s + x, 0);
    assert.ok(total <= SEED_001_POLICY.constraints.maxWorkers, `${total} workers`);
    assert.ok((peak.get('h100') ?? 0) >= 5 && (peak.get('a10g') ?? 0) >= 15);
    for (const load of fleetLoads().values()) assert.ok(coldStartMs(load) > PROVISION_MS);
  });
});

describe('event queue', () => {
  test('pops by time, and in insertion order at the same time', () => {
    const q = new EventQueue<string>();
    const times = [50, 10, 30, 10, 70, 0, 30, 10];
    times.forEach((t, i) => q.push(t, `${t}:${i}`));
    const out: string[] = [];
    for (let e = q.pop(); e; e = q.pop()) out.push(e.payload);
    assert.deepEqual(out, ['0:5', '10:1', '10:3', '10:7', '30:2', '30:6', '50:0', '70:4']);
    assert.equal(q.size, 0);
  });
});

describe('fleet', () => {
  function oneWorker(): { fleet: Fleet; run: () => void } {
    const q = new EventQueue<FleetEvent>();
    const fleet = new Fleet('a10g', 1_000, 1, 0, H, (t, e) => q.push(t, e));
    const run = (): void => {
      for (let e = q.pop(); e; e = q.pop()) {
        if (e.payload.kind === 'done') e.payload.fleet.done(e.payload.worker, e.atMs);
        else e.payload.fleet.warm(e.payload.worker, e.atMs);
      }
    };
    return { fleet, run };
  }

  test('turbo goes before fast, relax only when nothing else waits, FIFO within a tier', () => {
    const { fleet, run } = oneWorker();
    const job = (tier: number, at: number) => ({ arrivalMs: at, serviceMs: 1_000, tier, calm: true });
    fleet.arrive(job(2, 0), 0); // starts at once on the idle worker
    fleet.arrive(job(2, 1), 1);
    fleet.arrive(job(1, 2), 2);
    fleet.arrive(job(0, 3), 3);
    fleet.arrive(job(1, 4), 4);
    run();
    // Relax 0 ran 0-1000, then turbo (waited 997), fast 2 (1998), fast 4 (2996), relax 1 last (3999).
    assert.deepEqual([...fleet.waits[0]!.values()], [997]);
    assert.deepEqual([...fleet.waits[1]!.values()], [1998, 2996]);
    assert.deepEqual([...fleet.waits[2]!.values()], [0, 3999]);
    assert.equal(fleet.waiting + fleet.inService, 0);
  });

  test("admission refuses a tier while its queued work per ready worker is over the tier's bound", () => {
    const { fleet, run } = oneWorker();
    for (let i = 0; i < 30; i++) fleet.arrive({ arrivalMs: 0, serviceMs: 10_000, tier: 1, calm: true }, 0);
    // One running, then 30 s of queued work is still admitted (fast's admission bound), 40 s is not: 1 + 4 accepted.
    assert.deepEqual([fleet.accepted[1], fleet.rejected[1]], [5, 25]);
    run();
    assert.equal(fleet.served[1], 5);
  });

  test('a scale-down takes idle workers at once and lets busy ones finish', () => {
    const q = new EventQueue<FleetEvent>();
    const fleet = new Fleet('a10g', 1_000, 3, 0, H, (t, e) => q.push(t, e));
    fleet.arrive({ arrivalMs: 0, serviceMs: 5_000, tier: 1, calm: true }, 0);
    fleet.scaleTo(0, 100);
    assert.equal(fleet.replicas, 0);
    assert.equal(fleet.inService, 1, 'the busy worker drains');
    const e = q.pop();
    assert.ok(e && e.payload.kind === 'done');
    fleet.done(e.payload.worker, e.atMs);
    assert.equal(fleet.inService, 0);
    // Billed: three workers until 100 ms, the draining one until 5 s.
    assert.equal(fleet.billedMs, 3 * 100 + 4_900);
  });
});

describe('cooldown check', () => {
  const step = (atS: number, from: number, to: number) => ({ atMs: atS * 1000, from, to });
  test('counts ups closer than 120 s and downs closer than 300 s to the step before', () => {
    assert.equal(stepsInsideCooldown([step(0, 5, 10), step(120, 10, 15), step(420, 15, 12)], SEED_001_POLICY), 0);
    assert.equal(stepsInsideCooldown([step(0, 5, 10), step(119, 10, 15)], SEED_001_POLICY), 1);
    assert.equal(stepsInsideCooldown([step(0, 5, 10), step(299, 10, 7), step(400, 7, 4)], SEED_001_POLICY), 2);
  });
});

describe('series', () => {
  test('percentiles and shares under a bound', () => {
    const s = new Series();
    for (let i = 1; i <= 2000; i++) s.push(i);
    const sorted = sortedValues([s]);
    assert.equal(percentileOfSorted(sorted, 50), 1000);
    assert.equal(percentileOfSorted(sorted, 99), 1980);
    assert.equal(shareBelow(sorted, 1001), 0.5);
    assert.equal(percentileOfSorted(new Float64Array(0), 50), null);
  });
});

describe('a short window around the spike (15:55-16:15), every strategy', () => {
  const result = simulate({ seed: 3, fromMs: 16 * H - 5 * MINUTE_MS, toMs: 16 * H + 15 * MINUTE_MS });
  const run = (name: string) => {
    const r = result.runs.find((x) => x.name === name);
    assert.ok(r, name);
    return r;
  };

  test('every arrival is refused or served exactly once, nothing is left behind, the same arrivals for all', () => {
    const arrivals = result.runs.map((r) => r.arrivals);
    assert.ok((arrivals[0] ?? 0) > 50_000, `${arrivals[0]} arrivals`);
    assert.deepEqual(new Set(arrivals).size, 1);
    assert.equal(
      result.arrivalsPerMinute.reduce((s, x) => s + x, 0),
      arrivals[0],
    );
    for (const r of result.runs) {
      let accepted = 0;
      let rejected = 0;
      for (const f of r.fleets) {
        for (let t = 0; t < 3; t++) {
          assert.equal(f.served[t], f.accepted[t], `${r.name} ${f.gpuType} tier ${t}: served = accepted`);
          assert.equal(f.waits[t]?.length, f.accepted[t], 'one start per accepted request');
          accepted += f.accepted[t] ?? 0;
          rejected += f.rejected[t] ?? 0;
        }
        assert.equal(f.waiting + f.inService, 0);
      }
      assert.equal(accepted + rejected, r.arrivals, r.name);
      assert.ok(rejected > 0, `${r.name}: the spike is shed in part`);
      assert.equal(r.leftBehind, 0);
    }
  });

  test('the policy scales during the spike, never inside a cooldown, within the pool maximum', () => {
    const policy = run('policy');
    const steps = policy.fleets.reduce((s, f) => s + f.steps.length, 0);
    assert.ok(steps > 0, 'the policy resized the fleets');
    for (const f of policy.fleets) assert.equal(stepsInsideCooldown(f.steps, SEED_001_POLICY), 0, f.gpuType);
    assert.ok(policy.poolMaxReplicas <= SEED_001_POLICY.constraints.maxWorkers);
    assert.ok(policy.poolMaxReplicas > [...result.peak.values()].reduce((s, x) => s + x, 0));
    const figures = allFigures(result).find((f) => f.strategy === 'policy');
    assert.equal(figures?.steps_inside_cooldown, 0);
  });

  test('static-peak never changes its replicas', () => {
    for (const f of run('static-peak').fleets) {
      assert.equal(f.steps.length, 0);
      assert.equal(f.minReplicas, result.peak.get(f.gpuType));
      assert.equal(f.maxReplicas, result.peak.get(f.gpuType));
    }
    assert.ok(
      run('static-peak').minutes.every((m) => m.replicas.join() === run('static-peak').minutes[0]?.replicas.join()),
    );
  });

  test('the chart has its three panels', () => {
    const svg = autoscalerChart(result);
    assert.match(svg, /^<svg /);
    assert.equal((svg.match(/class="title"/g) ?? []).length, 3);
    assert.match(svg, /15:55/);
  });
});

describe('flags', () => {
  test('--quick is 15:00-17:00; defaults are the whole day; bad values are refused', () => {
    const quick = parseSimulateOptions(['--quick']);
    assert.deepEqual(quick && windowMs(quick), { fromMs: 15 * H, toMs: 17 * H });
    const day = parseSimulateOptions([]);
    assert.deepEqual(day && [day.seed, day.hours, day.out], [1, 24, 'docs/autoscaler-day.svg']);
    assert.deepEqual(day?.admissionBoundsMs, [60_000, 30_000, 900_000]);
    assert.equal(parseSimulateOptions(['--help']), undefined);
    assert.throws(() => parseSimulateOptions(['--hours', '0']), /--hours/);
    assert.throws(() => parseSimulateOptions(['--admission', '1,2']), /--admission/);
  });
});
