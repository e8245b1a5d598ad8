// Circuit breakers shared through Redis (runtime/breaker-store.ts): processes agree on a breaker's state, and
// concurrent outcomes are never lost to a race. Real Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL_BREAKER } from '../../core/circuit-breaker';
import { RedisBreakerStore } from '../../runtime/breaker-store';
import { testRedis, type TestRedis } from '../helpers/redis';

describe('RedisBreakerStore', () => {
  let r: TestRedis;
  before(async () => {
    r = await testRedis();
  });
  after(async () => r.cleanup());

  test('two processes agree: failures from both open it, it half-opens after 60 s, 3 successes close it', async () => {
    const gatewayView = new RedisBreakerStore(r.redis, `${r.prefix}breaker:model:`, MODEL_BREAKER);
    const workerView = new RedisBreakerStore(r.duplicate(), `${r.prefix}breaker:model:`, MODEL_BREAKER);
    for (const store of [workerView, gatewayView, workerView, gatewayView]) await store.record('flux', false, 1000);
    assert.equal((await gatewayView.reading('flux', 1000)).state, 'CLOSED');
    const opened = await workerView.record('flux', false, 2000);
    assert.deepEqual([opened.before, opened.after], ['CLOSED', 'OPEN']);
    assert.equal((await gatewayView.reading('flux', 2000)).state, 'OPEN');
    assert.equal((await gatewayView.reading('sdxl', 2000)).state, 'CLOSED', 'one breaker per model');
    assert.equal((await gatewayView.reading('flux', 62_000)).state, 'HALF_OPEN');
    await workerView.record('flux', true, 62_000);
    await gatewayView.record('flux', true, 62_100);
    const closed = await workerView.record('flux', true, 62_200);
    assert.deepEqual([closed.before, closed.after], ['HALF_OPEN', 'CLOSED']);
  });

  test('concurrent outcomes from several connections are all counted', async () => {
    const policy = { failureThreshold: 1000, successThreshold: 1, openMs: 1000 };
    const stores = [r.redis, r.duplicate(), r.duplicate()].map(
      (redis) => new RedisBreakerStore(redis, `${r.prefix}breaker:race:`, policy),
    );
    await Promise.all(Array.from({ length: 60 }, (_, i) => (stores[i % 3] as RedisBreakerStore).record('m', false, 0)));
    assert.equal((await stores[0]?.reading('m', 0))?.snapshot.failures, 60);
  });
});
