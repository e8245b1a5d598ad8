// The gateway's breaker checks without Redis (gateway/breaker-gate.ts): readings cached a second per model, and a
// breaker that cannot be read lets requests through. (A re-attach never reaches them: test/unit/admission.test.ts.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { GenerationRequest } from '../../core/request';
import { BreakerGate } from '../../gateway/breaker-gate';
import { createLogger } from '../../runtime/logger';

const log = createLogger('test', {}, 'silent');
const request = (over: Partial<GenerationRequest> = {}): GenerationRequest =>
  ({ requestId: 'r1', userId: 'u1', model: 'sdxl', tier: 'fast', ...over }) as GenerationRequest;

describe('BreakerGate', () => {
  test('reads each model breaker at most once a second, and refuses while it is open', async () => {
    let reads = 0;
    let now = 1_000;
    const gate = new BreakerGate({
      modelBreakers: { openFor: () => (reads++, Promise.resolve(5_000)) },
      globalRate: undefined,
      log,
      now: () => now,
    });
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await gate.breakerRefusal(request()), {
        code: 'MODEL_CIRCUIT_OPEN',
        message: 'sdxl is failing on the GPU fleets and is paused; retry in 5000 ms',
        retryAfterMs: 5_000,
      });
    }
    assert.equal(reads, 1);
    now += 1_000;
    await gate.breakerRefusal(request());
    assert.equal(reads, 2, 'read again after a second');
  });

  test('an unreadable breaker lets the request through; the global breaker sheds relax only', async () => {
    const unreadable = new BreakerGate({
      modelBreakers: { openFor: () => Promise.reject(new Error('redis timeout')) },
      globalRate: { read: () => Promise.reject(new Error('redis timeout')) },
      log,
    });
    assert.equal(await unreadable.breakerRefusal(request({ tier: 'relax' })), undefined);
    const failing = new BreakerGate({
      modelBreakers: { openFor: () => Promise.resolve(undefined) },
      globalRate: { read: () => Promise.resolve({ total: 40, failed: 10, open: true }) },
      log,
    });
    assert.equal((await failing.breakerRefusal(request({ tier: 'relax' })))?.code, 'RELAX_SHED');
    assert.equal(await failing.breakerRefusal(request({ tier: 'fast' })), undefined);
  });
});
