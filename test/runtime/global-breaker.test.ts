// Seed 001's global breaker, shared through Redis (runtime/global-breaker.ts): outcomes counted once per request as
// its terminal event is first written, service failures only, over a sliding 60 s window. Real Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GlobalFailureRate, OutcomeCountingEventLog } from '../../runtime/global-breaker';
import { RedisEventLog } from '../../runtime/event-log';
import { testRedis, type TestRedis } from '../helpers/redis';

describe('the global failure rate', () => {
  let r: TestRedis;
  before(async () => {
    r = await testRedis();
  });
  after(async () => r.cleanup());

  test('opens above 10% with at least 20 requests, over the last 60 s only', async () => {
    const rate = new GlobalFailureRate(r.redis, `${r.prefix}window-`);
    const t0 = 1_800_000_000_000;
    for (let i = 0; i < 10; i++) await rate.record(true, t0);
    assert.deepEqual(await rate.read(t0), { total: 10, failed: 10, open: false }, 'too few requests to judge');
    for (let i = 0; i < 15; i++) await rate.record(false, t0 + 30_000);
    assert.equal((await rate.read(t0 + 30_000)).open, true, '10 of 25 failed');
    const later = await rate.read(t0 + 61_000);
    assert.deepEqual(later, { total: 15, failed: 0, open: false }, 'the early failures left the window');
  });

  test('the control worker counts each terminal once, and refusals and cancellations not as failures', async () => {
    const log = new RedisEventLog(r.redis, { prefix: `${r.prefix}events-` });
    const rate = new GlobalFailureRate(r.redis, `${r.prefix}counted-`);
    const counted = new OutcomeCountingEventLog(log, rate, (err) => assert.fail(String(err)));
    const failed = (code: 'INFERENCE_FAILED' | 'UNSAFE_PROMPT' | 'CANCELLED') =>
      ({ type: 'failed', code, message: code, retryable: false }) as const;
    await counted.publish('gen:u:a', { type: 'status', status: 'generating' }, 'status:generating');
    await counted.publish('gen:u:a', failed('INFERENCE_FAILED'), 'terminal');
    await counted.publish('gen:u:a', failed('INFERENCE_FAILED'), 'terminal'); // a retried activity: deduplicated
    await counted.publish('gen:u:b', failed('UNSAFE_PROMPT'), 'terminal');
    await counted.publish('gen:u:c', failed('CANCELLED'), 'terminal');
    await counted.publish('gen:u:d', { type: 'completed', images: [] }, 'terminal');
    await new Promise((resolve) => setTimeout(resolve, 50)); // counts are written in the background
    const { total, failed: failures } = await rate.read();
    assert.deepEqual({ total, failures }, { total: 4, failures: 1 });
  });
});
