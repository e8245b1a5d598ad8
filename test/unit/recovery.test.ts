// Seed 001's request recovery rules for the GPU step (core/recovery.ts), one failure type at a time.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_GPU_RETRIES, largerFleet, planRecovery, retryBackoffMs, retryPriorityKey } from '../../core/recovery';

const base = {
  tier: 'fast',
  fleets: ['a10g', 'l4', 'a100'],
  current: 'a10g',
  retries: 0,
  failureType: undefined,
  soloBatch: false,
} as const;

describe('request recovery (seed 001 RequestRecovery)', () => {
  test('MAX_RETRIES 3 with backoff min(30, 2^n) s', () => {
    assert.equal(MAX_GPU_RETRIES, 3);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(retryBackoffMs), [2000, 4000, 8000, 16000, 30000, 30000]);
    assert.deepEqual(planRecovery({ ...base, retries: 3 }), { action: 'give-up', reason: 'retries-exhausted' });
  });

  test('each retry is dispatched ahead of fresh requests of its tier, never past the highest priority', () => {
    assert.deepEqual(
      [1, 2, 3].map((n) => retryPriorityKey('relax', n)),
      [4, 3, 2],
    );
    assert.deepEqual(
      [1, 2, 3].map((n) => retryPriorityKey('fast', n)),
      [2, 1, 1],
    );
    assert.equal(retryPriorityKey('turbo', 1), 1);
  });

  test('OUT_OF_MEMORY: batch size 1 on a larger-VRAM fleet from the routing alternatives', () => {
    const plan = planRecovery({ ...base, failureType: 'OutOfMemory' });
    assert.deepEqual(plan, {
      action: 'retry',
      retry: 1,
      path: 'oom',
      gpuType: 'a100',
      soloBatch: true,
      delayMs: 2000,
      priorityKey: 2,
    });
    // Already on the largest allowed fleet: stay there, alone.
    const top = planRecovery({ ...base, current: 'a100', retries: 1, failureType: 'OutOfMemory' });
    assert.equal(top.action === 'retry' ? top.gpuType : undefined, 'a100');
    assert.equal(largerFleet(['h100', 'a100-80gb', 'a100'], 'a100'), 'h100');
  });

  test('MODEL_CORRUPTION and timeouts: a standard retry on the same fleet', () => {
    const corrupted = planRecovery({ ...base, failureType: 'ModelCorrupted', retries: 1 });
    assert.equal(corrupted.action === 'retry' ? `${corrupted.path}@${corrupted.gpuType}` : '', 'model-corruption@a10g');
    const timeout = planRecovery({ ...base, retries: 2, soloBatch: true });
    assert.deepEqual(timeout, {
      action: 'retry',
      retry: 3,
      path: 'standard',
      gpuType: 'a10g',
      soloBatch: true,
      delayMs: 8000,
      priorityKey: 1,
    });
  });

  test('GPU error and a worker shut down mid-run: a standard retry (the worker restarts or is gone)', () => {
    for (const failureType of ['GpuError', 'WorkerShutdown'] as const) {
      const plan = planRecovery({ ...base, failureType });
      assert.deepEqual(
        plan.action === 'retry' && [plan.path, plan.gpuType, plan.soloBatch],
        ['standard', 'a10g', false],
        failureType,
      );
    }
    assert.deepEqual(planRecovery({ ...base, failureType: 'Quarantined' }), {
      action: 'give-up',
      reason: 'non-retryable',
    });
  });

  test('a failure no retry can fix ends the request at once', () => {
    for (const failureType of [
      'ModelNotFound',
      'UnsafePrompt',
      'StagedImagesInvalid',
      'NoCapacity',
      'DeadlineExceeded',
    ] as const) {
      assert.deepEqual(planRecovery({ ...base, failureType }), { action: 'give-up', reason: 'non-retryable' });
    }
  });

  test("no retry is scheduled whose backoff would end at or past the request's deadline", () => {
    // Retry 1 waits 2 s, retry 3 waits 8 s.
    assert.deepEqual(planRecovery({ ...base, msLeft: 2000 }), { action: 'give-up', reason: 'deadline' });
    assert.deepEqual(planRecovery({ ...base, retries: 2, msLeft: 7999 }), { action: 'give-up', reason: 'deadline' });
    const inTime = planRecovery({ ...base, failureType: 'OutOfMemory', msLeft: 2001 });
    assert.deepEqual(inTime.action === 'retry' && [inTime.delayMs, inTime.gpuType], [2000, 'a100']);
    // Without a deadline the backoff is not weighed at all; a non-retryable failure is still that, not the deadline.
    assert.equal(planRecovery({ ...base, retries: 2 }).action, 'retry');
    assert.deepEqual(planRecovery({ ...base, failureType: 'ModelNotFound', msLeft: 1 }), {
      action: 'give-up',
      reason: 'non-retryable',
    });
  });
});
