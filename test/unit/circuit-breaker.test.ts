// Seed 001's circuit breakers (core/circuit-breaker.ts): each opens and closes with the seed's numbers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLOSED_BREAKER,
  FailureRateWindow,
  MODEL_BREAKER,
  WORKER_BREAKER,
  breakerAllows,
  breakerRetryAfterMs,
  breakerState,
  recordFailure,
  recordSuccess,
  type BreakerPolicy,
  type BreakerSnapshot,
} from '../../core/circuit-breaker';

function apply(policy: BreakerPolicy, start: BreakerSnapshot, outcomes: string, now: number): BreakerSnapshot {
  let snap = start;
  for (const o of outcomes) snap = o === 'F' ? recordFailure(snap, policy, now) : recordSuccess(snap, policy, now);
  return snap;
}

describe('circuit breakers (seed 001)', () => {
  test('per model: 5 consecutive failures open it; a success in between resets the count', () => {
    assert.equal(apply(MODEL_BREAKER, CLOSED_BREAKER, 'FFFF', 0).state, 'CLOSED');
    assert.equal(apply(MODEL_BREAKER, CLOSED_BREAKER, 'FFFFSFFFF', 0).state, 'CLOSED');
    const open = apply(MODEL_BREAKER, CLOSED_BREAKER, 'FFFFF', 1000);
    assert.deepEqual(open, { state: 'OPEN', failures: 0, successes: 0, openedAt: 1000 });
    assert.equal(breakerAllows(open, MODEL_BREAKER, 1000), false);
    assert.equal(breakerRetryAfterMs(open, MODEL_BREAKER, 31_000), 30_000);
  });

  test('per model: open for 60 s, then half-open; 3 successes close it, one failure opens it again', () => {
    const open = apply(MODEL_BREAKER, CLOSED_BREAKER, 'FFFFF', 0);
    assert.equal(breakerState(open, MODEL_BREAKER, 59_999), 'OPEN');
    assert.equal(breakerState(open, MODEL_BREAKER, 60_000), 'HALF_OPEN');
    assert.equal(breakerAllows(open, MODEL_BREAKER, 60_000), true, 'test traffic goes through');
    assert.equal(apply(MODEL_BREAKER, open, 'SS', 60_000).state, 'HALF_OPEN');
    assert.deepEqual(apply(MODEL_BREAKER, open, 'SSS', 60_000), CLOSED_BREAKER);
    const reopened = apply(MODEL_BREAKER, open, 'SSF', 61_000);
    assert.deepEqual(reopened, { state: 'OPEN', failures: 0, successes: 0, openedAt: 61_000 });
  });

  test('per worker: 3 failures open it for 30 s; 2 successes close it', () => {
    const open = apply(WORKER_BREAKER, CLOSED_BREAKER, 'FFF', 0);
    assert.equal(open.state, 'OPEN');
    assert.equal(breakerState(open, WORKER_BREAKER, 29_999), 'OPEN');
    assert.equal(breakerState(open, WORKER_BREAKER, 30_000), 'HALF_OPEN');
    assert.deepEqual(apply(WORKER_BREAKER, open, 'SS', 30_000), CLOSED_BREAKER);
  });

  test('outcomes reported while open change nothing (late answers from before it opened)', () => {
    const open = apply(WORKER_BREAKER, CLOSED_BREAKER, 'FFF', 0);
    assert.equal(apply(WORKER_BREAKER, open, 'SSFS', 10_000), open);
  });

  test('global: open above 10% failed over the last 60 s, once the window holds 20 requests', () => {
    const w = new FailureRateWindow();
    for (let i = 0; i < 18; i++) w.record(i < 3, 1000 + i);
    assert.equal(w.isOpen(2000), false, '3 of 18 failed: too few requests to judge');
    w.record(false, 2000);
    w.record(false, 2000);
    assert.deepEqual(w.counts(2000), { total: 20, failed: 3 });
    assert.equal(w.isOpen(2000), true, '15% of 20');
    for (let i = 0; i < 10; i++) w.record(false, 3000);
    assert.equal(w.isOpen(3000), false, '10% of 30 is not above 10%');
    assert.deepEqual(w.counts(1000 + 61_000), { total: 10, failed: 0 }, 'the first seconds left the window');
  });
});
