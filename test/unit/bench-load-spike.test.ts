// The pure parts of bench:load's spike profile (`--profile spike`, issue 11's load proof): its flags and derived
// settings, the outcome and rejection figures (retryAfterMs checked against the codes that promise it), queue wait by
// tier, the in-flight bound the queues are checked against, and the pass/fail checks. No servers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseLoadOptions } from '../../bench/load/options';
import { applyFrame, newRecord, type RequestRecord } from '../../bench/load/records';
import { healthFigures, passed, queueFigures, spikeChecks } from '../../bench/load/spike-checks';
import {
  RETRY_AFTER_CODES,
  inFlightBound,
  outcomeFigures,
  sendRate,
  waitsByTier,
} from '../../bench/load/spike-figures';
import { calibrationUsers, spikeArrivals, spikeWaitS, type SpikeOptions } from '../../bench/load/spike-options';
import { probeTargets, type ProbeSample } from '../../bench/load/spike-probes';
import { formatSpike, spikeReport } from '../../bench/load/spike-report';
import { stackUserCount, type StackFile } from '../../bench/load/stack';

function spikeOf(argv: string[]): SpikeOptions {
  const spike = parseLoadOptions(argv)?.spike;
  assert.ok(spike, 'a spike profile');
  return spike;
}

describe('spike flags', () => {
  test('--profile spike: 10x for 60 s from 50 users over every tier, capacity measured', () => {
    const options = parseLoadOptions(['--profile', 'spike']);
    assert.ok(options?.spike);
    assert.equal(options.users, 50);
    assert.deepEqual(options.mix.tiers, ['turbo', 'fast', 'relax']);
    assert.deepEqual(options.segments, []);
    assert.equal(options.spike.multiplier, 10);
    assert.equal(options.spike.durationS, 60);
    assert.equal(options.spike.capacity, undefined);
    assert.equal(options.spike.waitS, undefined);
    assert.equal(options.spike.turboWaitBoundMs, 60_000);
    assert.equal(parseLoadOptions([])?.spike, undefined, 'the standard profile has no spike');
  });

  test('--quick shortens it; every setting has a flag', () => {
    const quick = parseLoadOptions(['--profile', 'spike', '--quick']);
    assert.equal(quick?.users, 10);
    assert.equal(quick?.spike?.durationS, 10);
    assert.equal(quick?.spike?.calibrationCount, 40);
    const set = spikeOf(['--profile', 'spike', '--multiplier', '4', '--duration', '30', '--capacity', '12.5']);
    assert.deepEqual([set.multiplier, set.durationS, set.capacity], [4, 30, 12.5]);
    assert.equal(spikeOf(['--profile', 'spike', '--wait', '90', '--turbo-wait-bound', '5']).turboWaitBoundMs, 5_000);
  });

  test('bad or conflicting flags are refused, naming the flag', () => {
    assert.throws(() => parseLoadOptions(['--profile', 'surge']), /--profile surge/);
    assert.throws(() => parseLoadOptions(['--profile', 'spike', '--pattern', 'burst']), /sets its own arrivals/);
    assert.throws(() => parseLoadOptions(['--profile', 'spike', '--multiplier', '0']), /--multiplier/);
  });

  test('derived: offered rate and count, calibration users, the wait per request', () => {
    const spike = spikeOf(['--profile', 'spike']);
    assert.deepEqual(spikeArrivals(spike, 15), { rate: 150, count: 9000 });
    // (150 calibration + 10 warm-up) / 25 per user, rounded up.
    assert.equal(calibrationUsers(spike, 10), 7);
    // A minute plus three times the 2,500 in-flight bound at 15/s; within [60 s, 20 min].
    assert.equal(spikeWaitS(spike, 2500, 15), 560);
    assert.equal(spikeWaitS(spike, 1_000_000, 15), 1200);
    assert.equal(spikeWaitS(spike, 0, 15), 60);
    assert.equal(spikeWaitS(spikeOf(['--profile', 'spike', '--wait', '90']), 2500, 15), 90);
  });

  test('the spawned stack gets keys for the spike users and the calibration users after them', () => {
    const spike = parseLoadOptions(['--profile', 'spike']);
    assert.ok(spike);
    assert.equal(stackUserCount(spike), 50 + 7);
    const standard = parseLoadOptions(['--users', '6']);
    assert.ok(standard);
    assert.equal(stackUserCount(standard), 6);
  });
});

/** A request sent at `at` with the given frames applied in order, each `[frame, time]`. */
function request(id: string, at: number, frames: [Record<string, unknown>, number][]): RequestRecord {
  const r = Object.assign(newRecord(id, 0, 100), { sentAt: at });
  for (const [frame, now] of frames) applyFrame(r, frame, now);
  return r;
}

type Timed = [Record<string, unknown>, number];
const accepted = (seq = 1): Record<string, unknown> => ({ type: 'accepted', seq });
const generating = { type: 'status', status: 'generating', seq: 2 };
/** Accepted at `acc`, generating at `gen` unless undefined, then the terminal `end` at `at`. */
function served(id: string, acc: number, gen: number | undefined, end: Record<string, unknown>, at: number) {
  const frames: Timed[] = [[accepted(), acc], ...(gen === undefined ? [] : [[generating, gen] as Timed]), [end, at]];
  return request(id, 0, frames);
}
const completed = { type: 'completed', seq: 3 };
const noCapacity = { type: 'failed', code: 'NO_CAPACITY', seq: 2 };

describe('spike outcomes', () => {
  test('the codes that promise retryAfterMs are read from the documented meanings', () => {
    for (const code of ['RATE_LIMITED', 'IN_FLIGHT_LIMIT', 'OVERLOADED', 'RELAX_SHED', 'MODEL_CIRCUIT_OPEN']) {
      assert.ok(RETRY_AFTER_CODES.includes(code), code);
    }
    for (const code of ['TIER_NOT_ALLOWED', 'INVALID_REQUEST', 'UNKNOWN_REQUEST']) {
      assert.ok(!RETRY_AFTER_CODES.includes(code), code);
    }
  });

  test('rejections by code with their retryAfterMs; missing ones and non-shedding codes are defects', () => {
    const records = [
      served('ok', 5, 20, completed, 50),
      served('nocap', 5, undefined, noCapacity, 900),
      request('r1', 0, [[{ type: 'rejected', code: 'IN_FLIGHT_LIMIT', retryAfterMs: 1200 }, 3]]),
      request('r2', 0, [[{ type: 'rejected', code: 'IN_FLIGHT_LIMIT', retryAfterMs: 800 }, 3]]),
      request('r3', 0, [[{ type: 'rejected', code: 'RATE_LIMITED' }, 3]]),
      request('r4', 0, [[{ type: 'rejected', code: 'TIER_NOT_ALLOWED' }, 3]]),
      request('r5', 0, [[{ type: 'rejected', code: 'SERVICE_UNAVAILABLE', message: 'Temporal is away' }, 3]]),
      request('r6', 0, [[{ type: 'rejected', code: 'SERVICE_UNAVAILABLE', message: 'Temporal is away' }, 3]]),
    ];
    const f = outcomeFigures(records, 10_000);
    assert.deepEqual([f.sent, f.accepted, f.completed, f.failed, f.rejected], [8, 2, 1, 1, 6]);
    assert.deepEqual(f.failed_by_code, { NO_CAPACITY: 1 });
    assert.deepEqual(f.rejected_by_code.IN_FLIGHT_LIMIT, {
      count: 2,
      with_retry_after: 2,
      retry_after_min_ms: 800,
      retry_after_p50_ms: 800,
      retry_after_max_ms: 1200,
    });
    assert.equal(f.rejected_by_code.RATE_LIMITED?.with_retry_after, 0);
    assert.equal(f.rejections_missing_retry_after, 1);
    assert.equal(f.rejections_not_shedding, 3);
    assert.deepEqual(f.not_shedding_messages, {
      SERVICE_UNAVAILABLE: { 'Temporal is away': 2 },
      TIER_NOT_ALLOWED: { '(no message)': 1 },
    });
    assert.equal(f.lost, 0);
  });

  test('lost: accepted without a terminal, never answered, or ended past the wait; duplicates counted', () => {
    const records = [
      request('open', 0, [[accepted(), 5]]),
      request('silent', 0, []),
      served('late', 5, undefined, completed, 20_000),
      served('twice', 5, undefined, completed, 30),
      newRecord('unsent', 9),
    ];
    const twice = records[3];
    assert.ok(twice);
    applyFrame(twice, completed, 40);
    const f = outcomeFigures(records, 10_000);
    assert.equal(f.sent, 4);
    assert.equal(f.lost, 3);
    assert.equal(f.unanswered, 1);
    assert.equal(f.completed, 1);
    assert.equal(f.duplicates, 1);
    assert.equal(f.duplicate_seqs, 1);
  });

  test('send rate: requests per second from the first send to the last', () => {
    const at = (ms: number): RequestRecord => request(`s${ms}`, ms, []);
    assert.equal(sendRate([0, 100, 200, 300, 400].map(at)), 10);
    assert.equal(sendRate([at(0)]), null);
    assert.equal(sendRate([newRecord('unsent', 0), at(5), at(5)]), null);
  });

  test('queue wait by tier: accepted to generating; an unstarted end counts to its terminal, a lost one not', () => {
    const records = [
      served('t1', 10, 110, completed, 200),
      served('t2', 10, 310, completed, 400),
      served('f1', 10, undefined, noCapacity, 5010),
      request('f2', 0, [[accepted(), 10]]),
      request('x', 0, [[{ type: 'rejected', code: 'IN_FLIGHT_LIMIT', retryAfterMs: 5 }, 2]]),
    ];
    const tiers: Record<string, string> = { t1: 'turbo', t2: 'turbo', f1: 'fast', f2: 'fast', x: 'fast' };
    const w = waitsByTier(records, (id) => tiers[id]);
    assert.deepEqual(w.turbo, { accepted: 2, never_started: 0, p50_ms: 100, p99_ms: 300, max_ms: 300 });
    assert.deepEqual(w.fast, { accepted: 2, never_started: 1, p50_ms: 5000, p99_ms: 5000, max_ms: 5000 });
  });

  test('the in-flight bound: users x per-user cap, or the deployment cap when smaller', () => {
    assert.deepEqual(inFlightBound({}, 50), {
      bound: 2500,
      per_user: 50,
      deployment: 10_000,
      source: 'users x per-user cap',
    });
    assert.equal(inFlightBound({ ATELIER_MAX_IN_FLIGHT: '1000' }, 50).source, 'deployment cap');
    assert.equal(inFlightBound({ ATELIER_MAX_IN_FLIGHT: '1000' }, 50).bound, 1000);
    assert.equal(inFlightBound({ ATELIER_MAX_IN_FLIGHT_PER_USER: 'lots' }, 2).bound, 100, 'unreadable: default');
  });
});

function sample(atMs: number, backlog: Record<string, number>, ready: Record<string, boolean>): ProbeSample {
  return { atMs, backlog, inFlight: atMs / 10, ready };
}

describe('spike checks', () => {
  const samples = [
    sample(0, { 'q.control/workflow': 10, 'q.gpu-h100/activity': 5 }, { gateway: true, 'control-worker': true }),
    sample(2000, { 'q.control/workflow': 400, 'q.gpu-h100/activity': 30 }, { gateway: true, 'control-worker': true }),
    sample(4000, {}, { gateway: false, 'control-worker': true }),
  ];
  const bound = inFlightBound({}, 10);

  test('queue figures: the largest summed backlog, per-queue maxima, the in-flight maximum', () => {
    const q = queueFigures(samples, bound);
    assert.equal(q.backlog_max_total, 430);
    assert.deepEqual(q.backlog_max_by_queue, { 'q.control/workflow': 400, 'q.gpu-h100/activity': 30 });
    assert.equal(q.in_flight_max, 400);
    assert.equal(q.samples, 3);
    assert.equal(queueFigures([sample(0, {}, {})], bound).backlog_max_total, null, 'never answered: unknown');
  });

  test('every check passes on a clean run; each defect fails its own check', () => {
    const outcomes = outcomeFigures(
      [request('r', 0, [[{ type: 'rejected', code: 'OVERLOADED', retryAfterMs: 900 }, 1]])],
      1000,
    );
    const queues = queueFigures(samples.slice(0, 2), bound);
    const health = healthFigures(samples.slice(0, 2), { gateway: true }, { gateway: true, temporal: true });
    const waits = { turbo: { accepted: 1, never_started: 0, p50_ms: 10, p99_ms: 10, max_ms: 10 } };
    const clean = spikeChecks({ outcomes, queues, waits, turboWaitBoundMs: 60_000, health });
    assert.ok(passed(clean), JSON.stringify(clean));

    const over = spikeChecks({
      outcomes,
      queues: queueFigures(samples, inFlightBound({}, 8)),
      waits,
      turboWaitBoundMs: 60_000,
      health,
    });
    assert.equal(over.queues_bounded, false, '430 > 8 users x 50');
    const slowTurbo = spikeChecks({ outcomes, queues, waits, turboWaitBoundMs: 5, health });
    assert.equal(slowTurbo.turbo_wait_bounded, false);
    const unready = healthFigures(samples, { gateway: true }, { gateway: true });
    assert.deepEqual(unready.during.gateway, { probes: 3, ready: 2 });
    assert.equal(spikeChecks({ outcomes, queues, waits, turboWaitBoundMs: 60_000, health: unready }).healthy, false);
    const dead = healthFigures([], { gateway: true }, { 'gpu-worker[h100]': false });
    assert.equal(spikeChecks({ outcomes, queues, waits, turboWaitBoundMs: 60_000, health: dead }).healthy, false);
    const noTurbo = spikeChecks({ outcomes, queues, waits: {}, turboWaitBoundMs: 1, health });
    assert.equal(noTurbo.turbo_wait_bounded, null, 'no turbo sent: not applicable');
    assert.ok(passed(noTurbo));
    const nothingShed = spikeChecks({ outcomes: outcomeFigures([], 1), queues, waits, turboWaitBoundMs: 1e6, health });
    assert.equal(nothingShed.excess_rejected, false);
  });

  test('the report carries the ratios to capacity and the verdict; the summary names each code', () => {
    const outcomes = outcomeFigures(
      [request('r', 0, [[{ type: 'rejected', code: 'IN_FLIGHT_LIMIT', retryAfterMs: 700 }, 1]])],
      1000,
    );
    const queues = queueFigures(samples.slice(0, 2), bound);
    const health = healthFigures(samples.slice(0, 2), { gateway: true }, { gateway: true });
    const checks = spikeChecks({ outcomes, queues, waits: {}, turboWaitBoundMs: 1, health });
    const report = spikeReport({
      settings: { commit: 'abc' },
      users: 50,
      spike: spikeOf(['--profile', 'spike']),
      capacity: { per_s: 15, source: 'measured', calibration_sent: 150 },
      offered: { rate: 150, count: 9000 },
      waitS: 560,
      sentPerS: 149.8,
      completedPerS: 14.4,
      outcomes,
      waits: {},
      queues,
      health,
      checks,
    });
    assert.equal(report.offered_vs_capacity, 10);
    assert.equal(report.completed_vs_capacity, 0.96);
    assert.equal(report.pass, true);
    assert.equal((report as Record<string, unknown>).commit, 'abc', 'settings go into the line as they are');
    const text = formatSpike(report);
    assert.match(text, /IN_FLIGHT_LIMIT 1 \(retryAfterMs on 1: 700 \/ 700 \/ 700 ms/);
    assert.match(text, /result\s+PASS/);
  });
});

describe('spike probes', () => {
  test('the region control queue and every fleet queue; /readyz of the gateway and each worker', () => {
    const file: StackFile = {
      launcherPid: 1,
      gateway: { wsUrl: 'ws://127.0.0.1:8080/v1/ws', apiKey: 'k' },
      temporal: { address: '127.0.0.1:7233', namespace: 'default', metricsUrl: null },
      processes: [
        { name: 'temporal', pid: 2, metricsUrl: 'http://127.0.0.1:9000/metrics' },
        { name: 'gateway', pid: 3, metricsUrl: 'http://127.0.0.1:8080/metrics' },
        { name: 'gpu-worker[h100]', pid: 4, metricsUrl: 'http://127.0.0.1:9101/metrics' },
        { name: 'redis', pid: 5 },
      ],
      env: { ATELIER_GPU_TYPES: 'a10g,h100' },
      region: 'eu-central',
    };
    const targets = probeTargets(file);
    assert.deepEqual(
      targets.queues.map((q) => `${q.taskQueue}/${q.taskType}`),
      [
        'eu-central.control/workflow',
        'eu-central.control/activity',
        'eu-central.gpu-a10g/activity',
        'eu-central.gpu-a10g.relax/activity',
        'eu-central.gpu-h100/activity',
        'eu-central.gpu-h100.relax/activity',
      ],
    );
    assert.deepEqual(targets.readiness, [
      { name: 'gateway', url: 'http://127.0.0.1:8080/readyz' },
      { name: 'gpu-worker[h100]', url: 'http://127.0.0.1:9101/readyz' },
    ]);
  });
});
