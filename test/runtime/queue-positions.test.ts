// Queue positions in Redis (runtime/queue-positions.ts): a request's rank among its tier's waiting requests, behind
// every higher priority in the same queue; taken out when a worker publishes `generating` or the terminal is
// written; entries older than the tier's bound pruned, so a lost removal inflates nobody's position for long. Real
// Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TIER_QUEUE_WAIT_BOUND_MS } from '../../core/capacity';
import type { RequestEvent } from '../../core/events';
import { QueueLeavingEventLog, QueuePositions, leavesQueue } from '../../runtime/queue-positions';
import { testRedis, type TestRedis } from '../helpers/redis';

const fleet = 'us-west.gpu-a10g';
const fast = { taskQueue: fleet, tier: 'fast' } as const;
const turbo = { taskQueue: fleet, tier: 'turbo' } as const;
const relax = { taskQueue: `${fleet}.relax`, tier: 'relax' } as const;

describe('queue positions', () => {
  let r: TestRedis;
  before(async () => {
    r = await testRedis();
  });
  after(async () => r.cleanup());

  test('arrival order within a tier, behind every waiting turbo request; relax counts in its own lane', async () => {
    const q = new QueuePositions(r.redis, `${r.prefix}a-`);
    const t0 = Date.now();
    for (const [i, id] of ['f1', 'f2', 'f3'].entries()) await q.enter(id, fast, t0 + i);
    await q.enter('t1', turbo, t0 + 10);
    await q.enter('x1', relax, t0 + 20);
    const at = (id: string, place: typeof fast | typeof turbo | typeof relax, ahead: ('turbo' | 'fast')[] = []) =>
      q.position(id, place, ahead, t0 + 30);
    assert.deepEqual(
      [await at('f1', fast, ['turbo']), await at('f2', fast, ['turbo']), await at('f3', fast, ['turbo'])],
      [2, 3, 4],
    );
    assert.equal(await at('t1', turbo), 1);
    assert.equal(await at('x1', relax), 1, 'the relax lane has no interactive work in it');
    assert.equal(await at('nobody', fast, ['turbo']), undefined);

    await q.enter('f1', fast, t0 + 40);
    assert.equal(await at('f1', fast, ['turbo']), 2, 'entered again (a retried accept): keeps its first place');
  });

  test('publishing generating or a terminal takes the request out; statuses before it do not', async () => {
    const q = new QueuePositions(r.redis, `${r.prefix}b-`);
    const published: string[] = [];
    const inner = { publish: (logId: string) => Promise.resolve(published.push(logId)) };
    const log = new QueueLeavingEventLog(inner, q, (err) => assert.fail(String(err)));
    for (const id of ['a', 'b', 'c']) await q.enter(id, fast);
    await log.publish('a', { type: 'status', status: 'safety_check' }, 'status:safety_check');
    await log.publish('b', { type: 'status', status: 'generating', gpuType: 'a10g' }, 'status:generating');
    await log.publish('c', { type: 'failed', code: 'CANCELLED', message: 'cancelled', retryable: false }, 'terminal');
    await new Promise((resolve) => setTimeout(resolve, 50)); // removals run after the publish, in the background
    assert.deepEqual(published, ['a', 'b', 'c'], 'every event still reaches the log');
    assert.deepEqual(
      [await q.position('a', fast, []), await q.position('b', fast, []), await q.position('c', fast, [])],
      [1, undefined, undefined],
    );
    await q.leave('b'); // a later terminal of a request that left already: nothing to do
    assert.equal(await q.position('a', fast, []), 1);
  });

  test('entries older than their tier bound are pruned, so a lost removal stops counting', async () => {
    const q = new QueuePositions(r.redis, `${r.prefix}c-`);
    const t0 = Date.now();
    await q.enter('lost', fast, t0 - TIER_QUEUE_WAIT_BOUND_MS.fast - 1);
    await q.enter('stuck-turbo', turbo, t0 - TIER_QUEUE_WAIT_BOUND_MS.turbo - 1);
    await q.enter('live', fast, t0);
    assert.equal(await q.position('live', fast, ['turbo'], t0), 1);
    assert.equal(await q.position('lost', fast, ['turbo'], t0), undefined);
  });

  test('which events mean the request left its queue', () => {
    const status = (s: 'queued' | 'safety_check' | 'pending_safety' | 'generating' | 'uploading'): RequestEvent => ({
      type: 'status',
      status: s,
    });
    assert.deepEqual(
      (['queued', 'safety_check', 'pending_safety', 'generating', 'uploading'] as const).map((s) =>
        leavesQueue(status(s)),
      ),
      [false, false, false, true, true],
    );
    assert.ok(leavesQueue({ type: 'completed', images: [] }));
    assert.ok(!leavesQueue({ type: 'progress', step: 1, totalSteps: 2 }));
  });
});
