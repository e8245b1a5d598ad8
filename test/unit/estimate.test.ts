// Honest expectations (core/estimate.ts): GPU-seconds from the latency model the simulated fleet runs, cost at seed
// 001's on-demand price of the fleet the request routes to, an ETA from the tier's queue sample, and the queue
// position's ETA and update rule.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { QueueSnapshot } from '../../core/capacity';
import {
  estimateRequest,
  modelledStepMs,
  queuedEtaMs,
  roundEtaMs,
  serviceMs,
  standingChanged,
  tiersAheadOf,
} from '../../core/estimate';
import type { Tier } from '../../core/tiers';

const sample = (backlogByPriority: Record<string, number>, dispatchPerSecond: number): QueueSnapshot => ({
  at: 0,
  backlogByPriority,
  dispatchPerSecond,
});

const sdxl = (tier: Tier = 'fast') =>
  ({ model: 'sdxl', width: 1024, height: 1024, numImages: 1, steps: 30, tier }) as const;

describe('the estimate in accepted', () => {
  test('SDXL 1024x1024, 30 steps on an A10G: 32 step-times with the decode, plus the fixed overhead', () => {
    // 12 TFLOP x 1.048576 Mpx / (125 TFLOPS x 0.35) = 287.6 ms a step; (30 + 2) x 287.6 + 150 = 9353 ms.
    assert.ok(Math.abs(modelledStepMs(sdxl(), 'a10g') - 287.61) < 0.01);
    assert.ok(Math.abs(serviceMs(sdxl(), 'a10g') - 9353.5) < 0.1);
    const estimate = estimateRequest(sdxl(), 'a10g', sample({ '3': 20 }, 2));
    // $1.00 an hour: 9.35 s cost $0.002597; 20 fast requests ahead at 2 a second wait 10 s.
    assert.deepEqual(estimate, { gpuType: 'a10g', gpuSeconds: 9.35, costUsd: 0.002597, etaMs: 19_400 });
  });

  test("cost follows the fleet's price: the same work on an H100 takes 8x less time at 6x the price", () => {
    const h100 = estimateRequest(sdxl('turbo'), 'h100', undefined);
    assert.equal(h100.gpuType, 'h100');
    assert.equal(h100.gpuSeconds, 1.31); // (32 x 36.36 ms) + 150 ms
    assert.equal(h100.costUsd, 0.002183); // 1.31 s at $6.00 an hour
  });

  test('more images, pixels or steps cost proportionally more; the overhead is charged once', () => {
    const one = serviceMs(sdxl(), 'a10g') - 150;
    assert.ok(Math.abs(serviceMs({ ...sdxl(), numImages: 4 }, 'a10g') - 150 - 4 * one) < 1e-6);
    assert.ok(Math.abs(serviceMs({ ...sdxl(), width: 2048, height: 2048 }, 'a10g') - 150 - 4 * one) < 1e-6);
    assert.ok(Math.abs(serviceMs({ ...sdxl(), steps: 62 }, 'a10g') - 150 - 2 * one) < 1e-6);
  });

  test('a tiny request still costs at least a hundredth of a GPU-second', () => {
    const tiny = { model: 'tiny-sd', width: 64, height: 64, numImages: 1, steps: 4, tier: 'fast' } as const;
    assert.deepEqual(estimateRequest(tiny, 'a10g', sample({}, 0)), {
      gpuType: 'a10g',
      gpuSeconds: 0.15,
      costUsd: 0.000042,
      etaMs: 200,
    });
  });

  test('the ETA waits only behind its own and higher priorities, and is left out when the wait is unknown', () => {
    const queue = sample({ '1': 2, '3': 8, '5': 100 }, 2);
    assert.equal(estimateRequest(sdxl('turbo'), 'a10g', queue).etaMs, roundEtaMs(1_000 + 9353.5));
    assert.equal(estimateRequest(sdxl('fast'), 'a10g', queue).etaMs, roundEtaMs(5_000 + 9353.5));
    assert.equal(estimateRequest(sdxl(), 'a10g', sample({}, 0)).etaMs, 9_400, 'nothing ahead: service time only');
    assert.equal(estimateRequest(sdxl(), 'a10g', undefined).etaMs, undefined, 'no sample');
    assert.equal(
      estimateRequest(sdxl(), 'a10g', sample({ '3': 5 }, 0)).etaMs,
      undefined,
      'a queue that drains nothing',
    );
    assert.ok(!('etaMs' in estimateRequest(sdxl(), 'a10g', undefined)), 'absent, not undefined, on the wire');
  });

  test('ETAs round up to a tenth of a second', () => {
    assert.deepEqual([roundEtaMs(0), roundEtaMs(1), roundEtaMs(100), roundEtaMs(101)], [0, 100, 100, 200]);
  });
});

describe('the queue position', () => {
  test('fast waits behind turbo in the same queue; turbo behind nobody; relax in a lane of its own', () => {
    assert.deepEqual(tiersAheadOf('us-west', 'a10g', 'fast'), ['turbo']);
    assert.deepEqual(tiersAheadOf('us-west', 'a10g', 'turbo'), []);
    assert.deepEqual(tiersAheadOf('us-west', 'a10g', 'relax'), []);
  });

  test('its ETA is the position over the drain rate, plus the service time', () => {
    assert.equal(queuedEtaMs(3, sample({}, 0.5), 9_353.5), 6_000 + 9_400);
    assert.equal(queuedEtaMs(1, sample({}, 4), 150), 400);
    assert.equal(queuedEtaMs(3, sample({ '3': 3 }, 0), 150), undefined, 'nothing drains: unknown');
    assert.equal(queuedEtaMs(3, undefined, 150), undefined, 'no sample: unknown');
  });

  test('an update is sent for a new position or an ETA that moved by 1 s and 10%, not for wobble', () => {
    assert.ok(standingChanged(undefined, { queuePosition: 4 }));
    assert.ok(standingChanged({ queuePosition: 4, etaMs: 60_000 }, { queuePosition: 3, etaMs: 60_000 }));
    assert.ok(!standingChanged({ queuePosition: 4, etaMs: 60_000 }, { queuePosition: 4, etaMs: 65_000 }));
    assert.ok(standingChanged({ queuePosition: 4, etaMs: 60_000 }, { queuePosition: 4, etaMs: 66_000 }));
    assert.ok(!standingChanged({ queuePosition: 1, etaMs: 2_000 }, { queuePosition: 1, etaMs: 2_900 }));
    assert.ok(standingChanged({ queuePosition: 1, etaMs: 2_000 }, { queuePosition: 1, etaMs: 3_000 }));
    assert.ok(standingChanged({ queuePosition: 1, etaMs: 2_000 }, { queuePosition: 1 }), 'the ETA became unknown');
    assert.ok(!standingChanged({ queuePosition: 1 }, { queuePosition: 1 }));
  });
});
