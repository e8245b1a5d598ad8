// The dynamic batcher alone, with a clock the test controls: a group goes out when it fills or when its oldest image
// has waited the queue delay, stays queued while no thread is free, and is never left waiting for nothing when its
// timer fires a little early by the batcher's clock (a lone request once hung forever that way, about one run in
// thirty of the ONNX backend tests).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicBatcher, type BatchKey } from '../../inference/onnx/batcher';

const KEY: BatchKey = { model: 'tiny-sd', width: 64, height: 64, steps: 4, guidanceScale: 7.5, scheduler: 'euler' };

function until(check: () => boolean, timeoutMs = 1_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error(`not within ${timeoutMs} ms`));
      else setTimeout(poll, 2);
    };
    poll();
  });
}

describe('DynamicBatcher', () => {
  test('a full group goes out at once, as one pass of at most the cap', () => {
    const passes: number[][] = [];
    const batcher = new DynamicBatcher<number>({
      maxQueueDelayMs: 10_000,
      capFor: () => 3,
      dispatch: (_key, members) => (passes.push(members), true),
    });
    batcher.enqueue(KEY, [1, 2, 3, 4]);
    assert.deepEqual(passes, [[1, 2, 3]]);
    assert.equal(batcher.queued, 1);
    batcher.clear();
  });

  test('a solo request (a retry after out-of-memory) shares no pass and runs one image per pass', () => {
    const passes: { solo: string | undefined; members: number[] }[] = [];
    const batcher = new DynamicBatcher<number>({
      maxQueueDelayMs: 10_000,
      capFor: () => 8,
      dispatch: (key, members) => (passes.push({ solo: key.solo, members }), true),
    });
    batcher.enqueue(KEY, [1, 2]); // waits for company
    batcher.enqueue({ ...KEY, solo: 'req-oom' }, [10, 11]);
    assert.deepEqual(passes, [
      { solo: 'req-oom', members: [10] },
      { solo: 'req-oom', members: [11] },
    ]);
    assert.equal(batcher.queued, 2, 'the shared group still waits, untouched');
    batcher.clear();
  });

  test('a lone image goes out once it has waited the queue delay', async () => {
    const passes: number[][] = [];
    const batcher = new DynamicBatcher<number>({
      maxQueueDelayMs: 20,
      capFor: () => 8,
      dispatch: (_key, members) => (passes.push(members), true),
    });
    batcher.enqueue(KEY, [1]);
    assert.deepEqual(passes, [], 'it waits for company first');
    await until(() => passes.length === 1);
    assert.deepEqual(passes, [[1]]);
  });

  test('while no thread is free the group stays queued, and the next pump sends it', async () => {
    let free = false;
    const passes: number[][] = [];
    const batcher = new DynamicBatcher<number>({
      maxQueueDelayMs: 5,
      capFor: () => 8,
      dispatch: (_key, members) => free && (passes.push(members), true),
    });
    batcher.enqueue(KEY, [1, 2]);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(passes, []);
    assert.equal(batcher.queued, 2);
    free = true;
    batcher.pump();
    assert.deepEqual(passes, [[1, 2]]);
  });

  test('a timer that fires just before the delay by the batcher clock is armed again, not dropped', async () => {
    // Each reading of this clock is 3 ms later than the last: the enqueue reads 0, the pump in enqueue 3, the timer
    // is armed at 6 (4 ms to go); when it fires, the pump reads 9 (not yet due) and any later reading is past due.
    let readings = 0;
    const passes: number[][] = [];
    const batcher = new DynamicBatcher<number>({
      maxQueueDelayMs: 10,
      capFor: () => 8,
      dispatch: (_key, members) => (passes.push(members), true),
      now: () => 3 * readings++,
    });
    batcher.enqueue(KEY, [1]);
    await until(() => passes.length === 1, 500);
    assert.deepEqual(passes, [[1]]);
  });
});
