// Admission by capacity (core/capacity.ts): a new request waits behind its own and higher priorities' backlog at the
// fleet's drain rate; past its tier's bound it is shed, relax first, never turbo before fast, with a retryAfterMs
// from the drain rate. And the control worker's sample of a queue (workers/region-metrics.ts queueSnapshot).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONTROL_QUEUE_WAIT_BOUND_MS,
  capacityVerdict,
  expectedWaitMs,
  TIER_ADMISSION_WAIT_BOUND_MS,
  TIER_QUEUE_WAIT_BOUND_MS,
  type QueueSnapshot,
} from '../../core/capacity';
import { queueSnapshot } from '../../workers/region-metrics';

const snapshot = (backlog: Record<string, number>, dispatchPerSecond: number): QueueSnapshot => ({
  at: 0,
  backlogByPriority: backlog,
  dispatchPerSecond,
});

describe('capacity', () => {
  test('the wait counts only the backlog at the same or a higher priority', () => {
    const s = snapshot({ '1': 10, '3': 90, '5': 900 }, 10);
    assert.equal(expectedWaitMs(s, 'turbo'), 1_000);
    assert.equal(expectedWaitMs(s, 'fast'), 10_000);
    assert.equal(expectedWaitMs(s, 'relax'), 100_000);
    assert.equal(expectedWaitMs(snapshot({}, 0), 'relax'), 0, 'nothing queued: no wait');
    assert.equal(expectedWaitMs(snapshot({ '5': 3 }, 0), 'relax'), undefined, 'nothing drains: unknown');
  });

  test('relax is shed past its bound, or whenever fast is; fast past its own; turbo only once fast is', () => {
    // relax waits 20 min (> 15), fast 20 s (< 30): relax alone is shed.
    const relaxOnly = snapshot({ '3': 20, '5': 1180 }, 1);
    assert.deepEqual(capacityVerdict(relaxOnly, 'relax'), { shed: true, retryAfterMs: 5 * 60_000 });
    assert.deepEqual(capacityVerdict(relaxOnly, 'fast'), { shed: false });
    // fast waits 4 min (> 30 s): fast and relax are shed; relax's own wait (4 min) is fine, it goes with fast's.
    const fastFull = snapshot({ '3': 240 }, 1);
    assert.deepEqual(capacityVerdict(fastFull, 'fast'), { shed: true, retryAfterMs: 210_000 });
    assert.deepEqual(capacityVerdict(fastFull, 'relax'), { shed: true, retryAfterMs: 210_000 });
    assert.deepEqual(capacityVerdict(fastFull, 'turbo'), { shed: false }, 'turbo waits behind no fast work');
    // 40 s of turbo work: fast (behind it, bound 30 s) is shed, turbo (bound 60 s) is not.
    const turboBusy = snapshot({ '1': 40 }, 1);
    assert.equal(capacityVerdict(turboBusy, 'fast').shed, true);
    assert.equal(capacityVerdict(turboBusy, 'turbo').shed, false);
    assert.equal(capacityVerdict(snapshot({ '1': 200 }, 1), 'turbo').shed, true, 'fast is shed too: then turbo');
    assert.deepEqual(capacityVerdict(snapshot({ '5': 3 }, 0), 'relax'), { shed: false }, 'unknown drain: admit');
    // Admission's fast bound is twice the 15 s wait target; the failover bound (schedule-to-start) stays 3 min.
    assert.equal(TIER_ADMISSION_WAIT_BOUND_MS.fast, 30_000);
    assert.equal(TIER_QUEUE_WAIT_BOUND_MS.fast, 180_000);
  });

  test("relax's own wait is its lane's: the lane's backlog over the lane's drain rate", () => {
    const fleet = snapshot({ '3': 20 }, 1); // fast waits 20 s: fine
    const lane = snapshot({ '5': 400 }, 0.25); // relax waits 1600 s (> 15 min): shed
    assert.deepEqual(capacityVerdict(fleet, 'relax', undefined, lane), { shed: true, retryAfterMs: 700_000 });
    assert.deepEqual(capacityVerdict(fleet, 'fast', undefined, lane), { shed: false }, 'the lane never sheds fast');
    assert.deepEqual(capacityVerdict(fleet, 'relax', undefined, snapshot({ '5': 100 }, 1)), { shed: false });
    // fast past its bound sheds relax whatever the lane holds.
    const fastFull = snapshot({ '3': 240 }, 1);
    assert.equal(capacityVerdict(fastFull, 'relax', undefined, snapshot({}, 0)).shed, true);
  });

  test('the control queue sheds on seconds, not minutes: relax at 5 s of workflow tasks ahead, fast at 15 s', () => {
    const behind = snapshot({ '3': 40, '5': 20 }, 5); // relax waits 12 s, fast 8 s
    assert.deepEqual(capacityVerdict(behind, 'relax', CONTROL_QUEUE_WAIT_BOUND_MS), {
      shed: true,
      retryAfterMs: 7_000,
    });
    assert.deepEqual(capacityVerdict(behind, 'fast', CONTROL_QUEUE_WAIT_BOUND_MS), { shed: false });
    const far = snapshot({ '3': 100 }, 5); // fast waits 20 s
    assert.equal(capacityVerdict(far, 'fast', CONTROL_QUEUE_WAIT_BOUND_MS).shed, true);
    assert.equal(capacityVerdict(far, 'turbo', CONTROL_QUEUE_WAIT_BOUND_MS).shed, false);
    assert.ok(CONTROL_QUEUE_WAIT_BOUND_MS.turbo < 30_000, "under the gateway's 30 s start window");
  });

  test("the control worker's sample: backlog by priority, else all of it counted first; the dispatch rate", () => {
    // Temporal's counts are Longs; the sample reads them the same from plain numbers (as protobufjs may decode them).
    type Stats = Parameters<typeof queueSnapshot>[0];
    type ByPriority = Parameters<typeof queueSnapshot>[1];
    const byPriority = queueSnapshot(
      { approximateBacklogCount: 12, tasksDispatchRate: 2.5 } as unknown as Stats,
      { '3': { approximateBacklogCount: 4 }, '5': { approximateBacklogCount: 8 } } as unknown as ByPriority,
      7,
    );
    assert.deepEqual(byPriority, { at: 7, backlogByPriority: { '3': 4, '5': 8 }, dispatchPerSecond: 2.5 });
    const total = { approximateBacklogCount: 12 } as unknown as Stats;
    assert.deepEqual(queueSnapshot(total, undefined, 7).backlogByPriority, { '1': 12 });
  });
});
