// The pure parts of bench:load's mixed profile (`--profile mixed`, issue 11 item 5: relax on idle capacity only): its
// flags and derived settings (fleet, flood size, Poisson arrivals, users), the wait figures from `accepted` to the
// first `progress`, the relax flood's figures, the checks and the report. No servers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seededRandom } from '../../bench/load/mix';
import {
  fastPhaseFigures,
  mixedChecks,
  mixedPassed,
  phaseOver,
  phaseWindow,
  relaxFigures,
  stillOpen,
  unanswered,
  waitSpread,
} from '../../bench/load/mixed-figures';
import {
  FAST_WAIT_RATIO_BOUND,
  fastRate,
  floodSize,
  mixFleet,
  mixedCalibrationUsers,
  poissonArrivals,
  relaxPerUser,
  type MixedOptions,
} from '../../bench/load/mixed-options';
import { formatMixed, mixedReport } from '../../bench/load/mixed-report';
import { parseLoadOptions } from '../../bench/load/options';
import { applyFrame, newRecord, type RequestRecord } from '../../bench/load/records';
import { stackUserCount } from '../../bench/load/stack';

function mixedOf(argv: string[]): MixedOptions {
  const mixed = parseLoadOptions(['--profile', 'mixed', ...argv])?.mixed;
  assert.ok(mixed, 'a mixed profile');
  return mixed;
}

describe('mixed flags', () => {
  test('--profile mixed: sdxl 512x512 to the a10g fleet only, 20 fast users at half capacity for 60 s', () => {
    const options = parseLoadOptions(['--profile', 'mixed']);
    assert.ok(options?.mixed);
    assert.equal(options.spike, undefined);
    assert.deepEqual(options.segments, []);
    assert.equal(options.users, 20);
    assert.deepEqual(options.mix.models, ['sdxl']);
    assert.deepEqual(options.mix.tiers, ['fast', 'relax']);
    assert.deepEqual(options.mix.sizes, [{ width: 512, height: 512 }]);
    assert.deepEqual(options.gpuTypes, ['a10g']);
    assert.equal(options.simSpeedup, 10);
    const m = options.mixed;
    assert.deepEqual(
      [m.fastLoad, m.durationS, m.capacity, m.calibrationCount, m.relaxFlood, m.relaxUsers, m.floodRate, m.drainS],
      [0.5, 60, undefined, 60, undefined, 12, 25, 60],
    );
    assert.equal(parseLoadOptions([])?.mixed, undefined, 'the standard profile has no mixed settings');
  });

  test('--quick shortens it; every setting has a flag', () => {
    const quick = parseLoadOptions(['--profile', 'mixed', '--quick']);
    assert.equal(quick?.users, 6);
    assert.equal(quick?.mixed?.durationS, 15);
    const m = mixedOf(['--fast-load', '0.3', '--duration', '30', '--capacity', '4.5', '--relax-flood', '200']);
    assert.deepEqual([m.fastLoad, m.durationS, m.capacity, m.relaxFlood], [0.3, 30, 4.5, 200]);
    const n = mixedOf(['--relax-users', '5', '--flood-rate', '10', '--drain', '0', '--calibration-count', '30']);
    assert.deepEqual([n.relaxUsers, n.floodRate, n.drainS, n.calibrationCount], [5, 10, 0, 30]);
    assert.deepEqual(parseLoadOptions(['--profile', 'mixed', '--gpu-types', 'a10g,h100'])?.gpuTypes, ['a10g', 'h100']);
  });

  test("bad values, the other profiles' flags and requests that split over fleets are refused, naming them", () => {
    assert.throws(() => parseLoadOptions(['--profile', 'mixed', '--fast-load', '1.5']), /--fast-load 1.5/);
    assert.throws(() => parseLoadOptions(['--profile', 'mixed', '--relax-flood', '2.5']), /--relax-flood 2.5/);
    assert.throws(() => parseLoadOptions(['--profile', 'mixed', '--rate', '5']), /--rate does not apply/);
    assert.throws(() => parseLoadOptions(['--profile', 'mixed', '--tiers', 'fast']), /--tiers does not apply/);
    assert.throws(() => parseLoadOptions(['--profile', 'mixed', '--multiplier', '3']), /--multiplier/);
    assert.throws(() => parseLoadOptions(['--fast-load', '0.5']), /--fast-load is a flag of --profile mixed/);
    assert.throws(() => parseLoadOptions(['--profile', 'spike', '--drain', '5']), /--drain is a flag/);
    // 2048 pixels a side is high-res: fast and relax both go to a100, but with 512 too the mix spans two fleets.
    assert.throws(
      () => parseLoadOptions(['--profile', 'mixed', '--sizes', '512x512,2048x2048']),
      /route to one fleet; these go to a10g, a100/,
    );
    assert.equal(mixFleet({ models: ['flux'], tiers: [], sizes: [{ width: 1024, height: 1024 }], steps: [1] }), 'a100');
  });

  test('the spawned stack gets keys for fast users, then relax users, then calibration users', () => {
    const options = parseLoadOptions(['--profile', 'mixed']);
    assert.ok(options?.mixed);
    // (60 calibration + 10 warm-up) / 25 per user, rounded up.
    assert.equal(mixedCalibrationUsers(options.mixed, options.warmup), 3);
    assert.equal(stackUserCount(options), 20 + 12 + 3);
  });
});

describe('mixed derived settings', () => {
  const mixed = mixedOf([]);

  test('fast rate: the load times the capacity', () => {
    assert.equal(fastRate(mixed, 4.2), 2.1);
  });

  test("relax per user: 90% of the smaller of the user's in-flight cap and rate per minute", () => {
    assert.equal(relaxPerUser({}), 45);
    assert.equal(relaxPerUser({ ATELIER_MAX_IN_FLIGHT_PER_USER: '10' }), 9);
    assert.equal(relaxPerUser({ ATELIER_RATE_LIMIT_PER_MINUTE: '20', ATELIER_MAX_IN_FLIGHT_PER_USER: '100' }), 18);
    assert.equal(relaxPerUser({ ATELIER_MAX_IN_FLIGHT_PER_USER: 'lots' }), 45, 'unreadable: the default');
  });

  test('flood: twice what the idle capacity drains in a phase, grown by what drains while it is sent; caps cut it', () => {
    // 2 x 0.5 x 4/s x 60 s = 240, sent at 25/s while 4/s drain: 240 / (1 - 4/25) = 285.7, rounded up.
    assert.deepEqual(floodSize(mixed, 4, 12, 45), { count: 286, capped: false, most: 540 });
    assert.deepEqual(floodSize(mixed, 4, 2, 45), { count: 90, capped: true, most: 90 });
    assert.equal(floodSize(mixedOf(['--relax-flood', '100']), 4, 12, 45).count, 100);
    // A fleet faster than the flood's send rate: the divisor stops at 0.2 instead of going negative.
    assert.equal(floodSize(mixed, 50, 1000, 45).count, 15_000);
  });

  test('Poisson arrivals: the same seed gives the same schedule, at about the rate, within the duration', () => {
    const a = poissonArrivals(5, 200, seededRandom(7));
    assert.deepEqual(a, poissonArrivals(5, 200, seededRandom(7)));
    assert.ok(a.length > 900 && a.length < 1100, `${a.length} arrivals for 1000 expected`);
    assert.ok(a.every((x, i) => x.offsetMs < 200_000 && x.rate === 5 && x.offsetMs >= (a[i - 1]?.offsetMs ?? 0)));
    const gaps = a.slice(1).map((x, i) => x.offsetMs - (a[i]?.offsetMs ?? 0));
    const short = gaps.filter((g) => g < 200).length / gaps.length;
    // Exponential gaps with mean 200 ms: 1 - 1/e of them shorter than the mean (evenly paced: none or all).
    assert.ok(Math.abs(short - 0.632) < 0.05, `share of gaps under the mean: ${short}`);
  });
});

type Timed = [Record<string, unknown>, number];
function request(id: string, sentAt: number, frames: Timed[]): RequestRecord {
  const r = Object.assign(newRecord(id, 0, 2), { sentAt });
  for (const [frame, now] of frames) applyFrame(r, frame, now);
  return r;
}
const accepted: Record<string, unknown> = { type: 'accepted', seq: 1 };
const generating = { type: 'status', status: 'generating', seq: 2 };
const progress = { type: 'progress', step: 1, totalSteps: 30, seq: 3 };
const completed = { type: 'completed', seq: 4 };
const cancelled = { type: 'failed', code: 'CANCELLED', seq: 4 };
/** Sent at `at`, accepted 5 ms later, a worker takes it at `gen`, the device runs its first step at `prog`. */
function fast(id: string, at: number, gen: number, prog: number, end = prog + 100): RequestRecord {
  return request(id, at, [
    [accepted, at + 5],
    [generating, gen],
    [progress, prog],
    [completed, end],
  ]);
}

describe('mixed figures', () => {
  test('queue wait: accepted to the first progress; to generating beside it; an unstarted end counts to it', () => {
    const records = [
      fast('a', 0, 20, 105),
      fast('b', 0, 30, 205),
      request('c', 0, [
        [accepted, 5],
        [{ type: 'failed', code: 'NO_CAPACITY', seq: 2 }, 1005],
      ]),
      request('open', 0, [[accepted, 5]]),
      request('refused', 0, [[{ type: 'rejected', code: 'RATE_LIMITED', retryAfterMs: 100 }, 2]]),
    ];
    assert.deepEqual(waitSpread(records, 'progressAt'), {
      n: 3,
      never_reached: 1,
      p50_ms: 200,
      p95_ms: 1000,
      p99_ms: 1000,
      max_ms: 1000,
    });
    assert.equal(waitSpread(records, 'generatingAt').p50_ms, 25);
    // From a later mark: only requests that reached it (c never generated).
    assert.deepEqual(waitSpread(records, 'progressAt', 'generatingAt').n, 2);
    assert.equal(waitSpread(records, 'progressAt', 'generatingAt').p50_ms, 85);
    const f = fastPhaseFigures(records, 10_000, 2);
    assert.deepEqual([f.outcomes.sent, f.outcomes.completed, f.outcomes.lost, f.offered_per_s], [5, 2, 1, 2.5]);
    assert.deepEqual(f.outcomes.rejected_by_code.RATE_LIMITED?.count, 1);
  });

  test('phase bookkeeping: over once all ended or past the wait; open and unanswered requests', () => {
    const done = fast('d', 0, 10, 20);
    const waiting = request('w', 1000, [[accepted, 1005]]);
    const silent = request('s', 1000, []);
    assert.equal(phaseOver([done, waiting], 5000, 3000), false);
    assert.equal(phaseOver([done, waiting], 5000, 6000), true);
    assert.equal(phaseOver([done, newRecord('unsent', 1)], 5000, 0), true);
    assert.deepEqual(
      stillOpen([done, waiting, silent]).map((r) => r.id),
      ['w', 's'],
    );
    assert.equal(unanswered([done, waiting, silent]), 1);
    assert.deepEqual(phaseWindow([fast('x', 100, 110, 120, 900), fast('y', 300, 310, 320, 400)]), {
      startAt: 100,
      endAt: 900,
    });
    assert.equal(phaseWindow([newRecord('unsent', 0)]), undefined);
  });

  test('relax: accepted before, completed during, waiting at the end of the window; cancels and their refusals', () => {
    const window = { startAt: 1000, endAt: 5000 };
    const relax = [
      request('early', 0, [
        [accepted, 10],
        [completed, 500],
      ]),
      request('during', 0, [
        [accepted, 10],
        [completed, 3000],
      ]),
      request('after', 0, [
        [accepted, 10],
        [completed, 7000],
      ]),
      request('cancelled', 0, [[accepted, 10]]),
      request('raced', 0, [[accepted, 10]]),
      request('refused', 0, [[{ type: 'rejected', code: 'QUEUE_FULL', retryAfterMs: 9000 }, 5]]),
    ];
    const [, , , toCancel, raced] = relax;
    assert.ok(toCancel && raced);
    toCancel.cancelSentAt = 8000;
    applyFrame(toCancel, cancelled, 8100);
    // The request ended as the cancel went out: the gateway no longer knows it. Not a second terminal.
    raced.cancelSentAt = 8000;
    applyFrame(raced, completed, 8001);
    applyFrame(raced, { type: 'rejected', code: 'UNKNOWN_REQUEST' }, 8002);
    const r = relaxFigures(relax, window);
    assert.deepEqual(
      [r.accepted_before_phase, r.completed_during_phase, r.waiting_at_phase_end, r.cancelled, r.cancels_sent],
      [5, 1, 3, 1, 2],
    );
    assert.deepEqual(r.cancels_refused, { UNKNOWN_REQUEST: 1 });
    assert.deepEqual([r.outcomes.accepted, r.outcomes.completed, r.outcomes.rejected], [5, 4, 1]);
    assert.equal(r.outcomes.duplicates, 0);
    assert.equal(r.outcomes.lost, 0);
  });
});

describe('mixed checks and report', () => {
  /** A phase of 100 fast requests whose waits to the first progress are 1..100 ms times `scale`. */
  function phase(scale: number) {
    const records = Array.from({ length: 100 }, (_, i) =>
      fast(`f${i}`, i * 10, i * 10 + 6, i * 10 + 5 + (i + 1) * scale),
    );
    return fastPhaseFigures(records, 60_000, 50);
  }
  const relaxOk = relaxFigures(
    [
      request('r1', 0, [
        [accepted, 1],
        [completed, 50],
      ]),
      request('r2', 0, [
        [accepted, 1],
        [completed, 5000],
      ]),
    ],
    { startAt: 10, endAt: 100 },
  );

  test('pass: nothing lost, relax progressing and still waiting at the end, fast p99 within 1.2x', () => {
    const checks = mixedChecks(phase(1), phase(FAST_WAIT_RATIO_BOUND), relaxOk);
    assert.ok(mixedPassed(checks), JSON.stringify(checks));
    assert.equal(mixedChecks(phase(1), phase(1.3), relaxOk).fast_wait_within_bound, false, '1.3x the baseline');
  });

  test('each defect fails its own check', () => {
    const lostFast = fastPhaseFigures([request('open', 0, [[accepted, 5]])], 1000, 1);
    assert.equal(mixedChecks(phase(1), lostFast, relaxOk).fast_lost_zero, false);
    assert.equal(mixedChecks(phase(1), lostFast, relaxOk).fast_wait_within_bound, false, 'no flood wait: no pass');
    const dropped = request('d', 0, [[accepted, 1]]);
    Object.assign(dropped, { outcome: 'dropped', terminalAt: 9, failureCode: 'connection_closed:1006' });
    const relaxDropped = relaxFigures([dropped], { startAt: 10, endAt: 100 });
    assert.equal(mixedChecks(phase(1), phase(1), relaxDropped).relax_ended_once, false);
    const starved = relaxFigures([request('r', 0, [[accepted, 1]])], { startAt: 10, endAt: 100 });
    const checks = mixedChecks(phase(1), phase(1), starved);
    assert.deepEqual([checks.relax_progressed, checks.flood_lasted, checks.relax_ended_once], [false, true, false]);
    const exhausted = mixedChecks(phase(1), phase(1), relaxFigures([], undefined));
    assert.equal(exhausted.flood_lasted, false);
  });

  test('the report carries both phases, the ratio and the verdict; the summary names them', () => {
    const baseline = phase(1);
    const underFlood = phase(1.1);
    const report = mixedReport({
      settings: { commit: 'abc' },
      mixed: mixedOf([]),
      fleet: 'a10g',
      users: { fast: 20, relax: 12, calibration: 3 },
      capacity: { per_s: 4, source: 'measured', calibration_sent: 60 },
      fast: { rate: 2, perPhase: 120 },
      flood: { count: 286, capped: false, most: 540, sentPerS: 24.9, answeredInS: 12.3 },
      drainedS: 60,
      baseline,
      floodPhase: underFlood,
      relax: relaxOk,
      checks: mixedChecks(baseline, underFlood, relaxOk),
    });
    assert.equal(report.fast_wait_p99_ratio, 1.1);
    assert.equal(report.pass, true);
    assert.equal((report as Record<string, unknown>).commit, 'abc', 'settings go into the line as they are');
    const text = formatMixed(report);
    assert.match(text, /fast p99 wait, flood \/ baseline\s+1\.1 \(bound 1\.2/);
    assert.match(text, /relax flood\s+286 from 12 users/);
    assert.match(text, /result\s+PASS/);
  });
});
