// The pure parts of `npm run bench:load`: percentiles and segment figures, arrival schedules, the Prometheus text
// parser and counter deltas, /proc stat parsing, and per-request bookkeeping (duplicates counted, missing
// terminals lost). No servers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { arrivalSchedule, runArrivals } from '../../bench/load/arrivals';
import { spreadSample } from '../../bench/load/history';
import { generateFrame, seededRandom } from '../../bench/load/mix';
import { parseLoadOptions } from '../../bench/load/options';
import { cpuPerRequest, parseProcStat } from '../../bench/load/process-cpu';
import { applyFrame, markDropped, newRecord, verdict, type RequestRecord } from '../../bench/load/records';
import { percentile, ratio, segmentFigures } from '../../bench/load/stats';
import { countsPerRequest, operationCounts, parsePrometheusText } from '../../bench/load/temporal-metrics';

describe('percentile', () => {
  test('nearest rank on unsorted input', () => {
    const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    assert.equal(percentile(values, 50), 5);
    assert.equal(percentile(values, 90), 9);
    assert.equal(percentile(values, 99), 10);
    assert.equal(percentile(values, 100), 10);
    assert.equal(percentile(values, 0), 1);
    assert.equal(percentile([42], 99), 42);
    assert.equal(percentile([], 50), null);
  });

  test('p99 of 1..1000 is 990, p50 is 500', () => {
    const values = Array.from({ length: 1000 }, (_, i) => 1000 - i);
    assert.equal(percentile(values, 99), 990);
    assert.equal(percentile(values, 50), 500);
  });

  test('ratio is null when a side is missing or the divisor is zero', () => {
    assert.equal(ratio(3, 2), 1.5);
    assert.equal(ratio(1, 3), 0.333);
    assert.equal(ratio(null, 2), null);
    assert.equal(ratio(2, 0), null);
  });
});

describe('arrival schedules', () => {
  test('paced: count requests evenly spaced at the rate', () => {
    const s = arrivalSchedule({ kind: 'paced', rate: 10, count: 5 });
    assert.deepEqual(
      s.map((a) => a.offsetMs),
      [0, 100, 200, 300, 400],
    );
    assert.ok(s.every((a) => a.rate === 10));
  });

  test('burst: every request at time zero, without a rate', () => {
    const s = arrivalSchedule({ kind: 'burst', count: 300 });
    assert.equal(s.length, 300);
    assert.ok(s.every((a) => a.offsetMs === 0 && a.rate === null));
  });

  test('step: each rate for its own window, one after the other', () => {
    const s = arrivalSchedule({ kind: 'step', rates: [2, 4], stepSeconds: 1 });
    assert.deepEqual(
      s.map((a) => [a.offsetMs, a.rate]),
      [
        [0, 2],
        [500, 2],
        [1000, 4],
        [1250, 4],
        [1500, 4],
        [1750, 4],
      ],
    );
  });

  test('runArrivals fires every arrival in order and not before its time', async () => {
    const fired: { index: number; at: number }[] = [];
    const start = performance.now();
    await runArrivals(arrivalSchedule({ kind: 'paced', rate: 50, count: 5 }), (index) =>
      fired.push({ index, at: performance.now() - start }),
    );
    assert.deepEqual(
      fired.map((f) => f.index),
      [0, 1, 2, 3, 4],
    );
    fired.forEach((f) => assert.ok(f.at >= f.index * 20 - 1, `arrival ${f.index} fired at ${f.at} ms`));
  });

  test('the default scenario is paced 10/s for 30 s, then a burst of 300', () => {
    const options = parseLoadOptions([]);
    assert.ok(options);
    assert.deepEqual(
      options.segments.map((s) => s.pattern),
      [
        { kind: 'paced', rate: 10, count: 300 },
        { kind: 'burst', count: 300 },
      ],
    );
    assert.equal(parseLoadOptions(['--help']), undefined);
    assert.equal(parseLoadOptions(['--attach'])?.attach, '.atelier/stack.json');
    assert.throws(() => parseLoadOptions(['--pattern', 'zigzag']), /--pattern/);
    assert.throws(() => parseLoadOptions(['--models', 'dall-e']), /unknown model/);
  });
});

describe('Prometheus text', () => {
  const text = [
    '# HELP service_requests service_requests counter',
    '# TYPE service_requests counter',
    'service_requests{namespace="default",operation="RecordActivityTaskHeartbeat",service_name="frontend"} 12',
    'service_requests{namespace="default",operation="RecordActivityTaskHeartbeat",service_name="history"} 12',
    'service_requests{namespace="default",operation="RespondWorkflowTaskCompleted",service_name="frontend"} 40',
    'service_requests{namespace="other",operation="RespondWorkflowTaskCompleted",service_name="frontend"} 1000',
    'persistence_latency_bucket{le="+Inf",operation="a \\"quoted\\", {braced} name"} 3 1700000000000',
    'go_goroutines 1.5e+03',
    '',
  ].join('\n');

  test('samples with labels, escapes, exponents and timestamps', () => {
    const samples = parsePrometheusText(text);
    assert.equal(samples.length, 6);
    const bucket = samples.find((s) => s.name === 'persistence_latency_bucket');
    assert.deepEqual(bucket?.labels, { le: '+Inf', operation: 'a "quoted", {braced} name' });
    assert.equal(bucket?.value, 3);
    assert.equal(samples.find((s) => s.name === 'go_goroutines')?.value, 1500);
  });

  test('operation counts: frontend only, one namespace, missing operations are zero', () => {
    const counts = operationCounts(parsePrometheusText(text), 'default');
    assert.deepEqual(counts, {
      RecordActivityTaskHeartbeat: 12,
      RespondWorkflowTaskCompleted: 40,
      RespondActivityTaskCompleted: 0,
    });
    assert.equal(operationCounts(parsePrometheusText('go_goroutines 3\n'), 'default'), null);
  });

  test('per request deltas, null without readings', () => {
    const before = {
      RecordActivityTaskHeartbeat: 10,
      RespondWorkflowTaskCompleted: 0,
      RespondActivityTaskCompleted: 5,
    };
    const after = {
      RecordActivityTaskHeartbeat: 30,
      RespondWorkflowTaskCompleted: 90,
      RespondActivityTaskCompleted: 35,
    };
    assert.deepEqual(countsPerRequest(before, after, 10), {
      RecordActivityTaskHeartbeat: 2,
      RespondWorkflowTaskCompleted: 9,
      RespondActivityTaskCompleted: 3,
    });
    assert.equal(countsPerRequest(null, after, 10).RecordActivityTaskHeartbeat, null);
  });
});

describe('process CPU', () => {
  test('utime + stime counted from the last parenthesis of /proc/<pid>/stat', () => {
    const stat = '4242 (node (gpu) worker) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 3 1 20 0 11 0 100 0 0';
    assert.equal(parseProcStat(stat), 325);
    assert.equal(parseProcStat('garbage'), null);
  });

  test('CPU seconds per completed request with a total', () => {
    const per = cpuPerRequest({ temporal: 10, gateway: 2, gone: null }, { temporal: 13, gateway: 3, gone: null }, 100);
    assert.deepEqual(per, { temporal: 0.03, gateway: 0.01, gone: null, total: 0.04 });
  });
});

describe('request bookkeeping', () => {
  const sent = (id: string, at = 0): RequestRecord => Object.assign(newRecord(id, 0, 10), { sentAt: at });

  test('a complete request: accept, queue wait and end-to-end times', () => {
    const r = sent('a', 100);
    applyFrame(r, { type: 'accepted', workflowId: 'gen:u:a', seq: 1 }, 110);
    applyFrame(r, { type: 'status', status: 'queued', seq: 2 }, 120);
    applyFrame(r, { type: 'status', status: 'generating', seq: 3 }, 150);
    applyFrame(r, { type: 'completed', seq: 4 }, 400);
    assert.equal(r.workflowId, 'gen:u:a');
    assert.equal(verdict(r, 1_000), 'completed');
    const f = segmentFigures([r], 1_000);
    assert.equal(f.accept_p50_ms, 10);
    assert.equal(f.queue_wait_p50_ms, 40);
    assert.equal(f.e2e_p50_ms, 300);
    assert.equal(f.duplicates, 0);
    assert.equal(f.lost, 0);
  });

  test('a second terminal event is a duplicate; a replayed seq is counted too', () => {
    const r = sent('b');
    applyFrame(r, { type: 'accepted', seq: 1 }, 1);
    applyFrame(r, { type: 'completed', seq: 2 }, 5);
    applyFrame(r, { type: 'accepted', seq: 1 }, 6);
    applyFrame(r, { type: 'status', status: 'queued', queuePosition: 3, seq: 1 }, 6); // a live queue update: not one
    applyFrame(r, { type: 'completed', seq: 2 }, 7);
    assert.equal(r.terminals, 2);
    assert.equal(r.duplicateSeqs, 2);
    assert.equal(r.terminalAt, 5, 'the first terminal is the one timed');
    const f = segmentFigures([r], 1_000);
    assert.equal(f.duplicates, 1);
    assert.equal(f.duplicate_seqs, 2);
    assert.equal(f.completed, 1);
  });

  test('no terminal event, or one after the timeout, is lost; an unsent request is not counted', () => {
    const silent = sent('c', 0);
    applyFrame(silent, { type: 'accepted', seq: 1 }, 5);
    const late = sent('d', 0);
    applyFrame(late, { type: 'completed', seq: 2 }, 2_000);
    const unsent = newRecord('e', 1);
    assert.equal(verdict(silent, 1_000), 'lost');
    assert.equal(verdict(late, 1_000), 'lost');
    assert.equal(verdict(unsent, 1_000), 'unsent');
    const f = segmentFigures([silent, late, unsent], 1_000);
    assert.deepEqual([f.sent, f.completed, f.lost], [2, 0, 2]);
    assert.equal(f.throughput_per_s, null);
  });

  test('failures by code: failed, rejected and a dropped connection', () => {
    const failed = sent('f');
    applyFrame(failed, { type: 'failed', code: 'UNSAFE_PROMPT', seq: 3 }, 10);
    const rejected = sent('g');
    applyFrame(rejected, { type: 'rejected', code: 'RATE_LIMITED' }, 10);
    const dropped = sent('h');
    applyFrame(dropped, { type: 'accepted', seq: 1 }, 3);
    markDropped(dropped, 1006, 20);
    applyFrame(dropped, { type: 'completed', seq: 5 }, 30);
    const f = segmentFigures([failed, rejected, dropped], 1_000);
    assert.deepEqual(f.failures, { UNSAFE_PROMPT: 1, 'rejected:RATE_LIMITED': 1, 'connection_closed:1006': 1 });
    assert.equal(f.failed, 3);
    assert.equal(f.lost, 0);
  });

  test('throughput is completions over first send to last completion', () => {
    const records = [0, 1, 2, 3].map((i) => {
      const r = sent(`t${i}`, i * 100);
      applyFrame(r, { type: 'completed', seq: 1 }, 1_000 + i * 100);
      return r;
    });
    // 4 completed between t=0 and t=1300 ms.
    assert.equal(segmentFigures(records, 10_000).throughput_per_s, 3.08);
  });

  test('step segments get figures per rate', () => {
    const slow = Object.assign(newRecord('s1', 0, 5), { sentAt: 0 });
    const fast = Object.assign(newRecord('s2', 1, 20), { sentAt: 0 });
    applyFrame(slow, { type: 'completed' }, 100);
    applyFrame(fast, { type: 'completed' }, 900);
    const f = segmentFigures([slow, fast], 10_000);
    assert.deepEqual(
      f.by_rate?.map((r) => [r.rate, r.e2e_p50_ms]),
      [
        [5, 100],
        [20, 900],
      ],
    );
  });
});

describe('request mix and sampling', () => {
  test('the same seed sends the same frames', () => {
    const mix = {
      models: ['sdxl-turbo', 'sdxl'],
      tiers: ['fast', 'turbo'],
      sizes: [{ width: 512, height: 512 }],
      steps: [1, 2],
    };
    const a = seededRandom(7);
    const b = seededRandom(7);
    const framesA = [0, 1, 2, 3, 4].map((i) => generateFrame(`r${i}`, mix, a));
    const framesB = [0, 1, 2, 3, 4].map((i) => generateFrame(`r${i}`, mix, b));
    assert.deepEqual(framesA, framesB);
    assert.ok(framesA.every((f) => f.type === 'generate' && f.width === 512 && mix.models.includes(f.model as string)));
  });

  test('history samples are spread over the whole run', () => {
    const ids = Array.from({ length: 100 }, (_, i) => i);
    assert.deepEqual(spreadSample(ids, 4), [0, 25, 50, 75]);
    assert.deepEqual(spreadSample([1, 2], 20), [1, 2]);
  });
});
