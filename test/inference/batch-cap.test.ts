// The out-of-memory batch cap policy on its own, without onnxruntime or threads: how far a failure lowers a model's
// cap, how successful passes lift it back to the configured maximum, and that models do not share caps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutOfMemoryBatchCap } from '../../inference/onnx/batch-cap';

/** Records `passes` successful passes of `model`. */
function succeed(caps: OutOfMemoryBatchCap, model: string, passes: number): void {
  for (let i = 0; i < passes; i++) caps.recordSuccess(model);
}

test('a model that never ran out of memory has no cap, and successes do not give it one', () => {
  const caps = new OutOfMemoryBatchCap(8, 3);
  assert.equal(caps.capFor('sd15'), Infinity);
  succeed(caps, 'sd15', 10);
  assert.equal(caps.capFor('sd15'), Infinity);
});

test('an out-of-memory pass halves the cap to half its size, rounding down', () => {
  const caps = new OutOfMemoryBatchCap(8, 3);
  assert.equal(caps.recordOutOfMemory('sd15', 8), 4);
  assert.equal(caps.capFor('sd15'), 4);
  assert.equal(caps.recordOutOfMemory('sd15', 4), 2);
  assert.equal(caps.capFor('sd15'), 2);

  const odd = new OutOfMemoryBatchCap(8, 3);
  assert.equal(odd.recordOutOfMemory('sd15', 7), 3);
  assert.equal(odd.capFor('sd15'), 3);
});

test('the cap never goes below one image', () => {
  const caps = new OutOfMemoryBatchCap(8, 3);
  assert.equal(caps.recordOutOfMemory('sd15', 2), 1);
  assert.equal(caps.capFor('sd15'), 1);
  assert.equal(caps.recordOutOfMemory('sd15', 1), 1);
  assert.equal(caps.capFor('sd15'), 1);
});

test('a failure of a pass larger than the cap in force does not raise the cap', () => {
  // A pass of 8 started before a pass of 2 failed and lowered the cap to 1; the 8 then fails too.
  const caps = new OutOfMemoryBatchCap(8, 3);
  caps.recordOutOfMemory('sd15', 2);
  assert.equal(caps.recordOutOfMemory('sd15', 8), 4, 'the failure itself asks for half its size');
  assert.equal(caps.capFor('sd15'), 1, 'the lower cap already in force stays');
});

test('the cap doubles after the configured number of successful passes, not before', () => {
  const caps = new OutOfMemoryBatchCap(8, 3);
  caps.recordOutOfMemory('sd15', 4);
  assert.equal(caps.capFor('sd15'), 2);
  succeed(caps, 'sd15', 2);
  assert.equal(caps.capFor('sd15'), 2);
  succeed(caps, 'sd15', 1);
  assert.equal(caps.capFor('sd15'), 4);
  succeed(caps, 'sd15', 2);
  assert.equal(caps.capFor('sd15'), 4, 'the count starts over after a doubling');
});

test('a failure while recovering lowers the cap again and restarts the count', () => {
  const caps = new OutOfMemoryBatchCap(16, 3);
  caps.recordOutOfMemory('sd15', 8);
  succeed(caps, 'sd15', 3);
  assert.equal(caps.capFor('sd15'), 8);
  caps.recordOutOfMemory('sd15', 8);
  assert.equal(caps.capFor('sd15'), 4);
  succeed(caps, 'sd15', 2);
  caps.recordOutOfMemory('sd15', 4);
  assert.equal(caps.capFor('sd15'), 2);
  succeed(caps, 'sd15', 2);
  assert.equal(caps.capFor('sd15'), 2, 'the two passes before the failure do not count');
  succeed(caps, 'sd15', 1);
  assert.equal(caps.capFor('sd15'), 4);
});

test('recovery ends with no cap once doubling reaches the configured maximum', () => {
  const caps = new OutOfMemoryBatchCap(6, 2);
  caps.recordOutOfMemory('sd15', 2);
  const seen: number[] = [caps.capFor('sd15')];
  for (let i = 0; i < 4; i++) {
    succeed(caps, 'sd15', 2);
    seen.push(caps.capFor('sd15'));
  }
  // 1 -> 2 -> 4 -> 8, which is at least 6: the configured maximum applies again and stays.
  assert.deepEqual(seen, [1, 2, 4, Infinity, Infinity]);
});

test('each model has its own cap and its own count of successful passes', () => {
  const caps = new OutOfMemoryBatchCap(8, 2);
  caps.recordOutOfMemory('sd15', 8);
  caps.recordOutOfMemory('sdxl', 2);
  assert.equal(caps.capFor('sd15'), 4);
  assert.equal(caps.capFor('sdxl'), 1);
  assert.equal(caps.capFor('tiny-sd'), Infinity);

  succeed(caps, 'sd15', 2);
  assert.equal(caps.capFor('sd15'), Infinity, 'sd15 doubled from 4 to 8, the maximum');
  assert.equal(caps.capFor('sdxl'), 1, 'sd15 passes do not count for sdxl');

  succeed(caps, 'sdxl', 1);
  succeed(caps, 'tiny-sd', 5);
  assert.equal(caps.capFor('sdxl'), 1);
  succeed(caps, 'sdxl', 1);
  assert.equal(caps.capFor('sdxl'), 2);
});
