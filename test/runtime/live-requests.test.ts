// The requests in flight, per user and for the deployment (runtime/live-requests.ts): caps hold under concurrent
// admissions from several gateways, a request already live is admitted again at no cost, and the terminal event
// written by the control worker gives its place back. Real Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GlobalFailureRate, OutcomeCountingEventLog } from '../../runtime/global-breaker';
import { RedisEventLog } from '../../runtime/event-log';
import { LIVE_MAX_AGE_MS, LiveRequests, userOfWorkflowId } from '../../runtime/live-requests';
import { testRedis, type TestRedis } from '../helpers/redis';

describe('live requests', () => {
  let r: TestRedis;
  before(async () => {
    r = await testRedis();
  });
  after(async () => r.cleanup());

  test("twenty admissions at once from two gateways: exactly the user's cap gets in", async () => {
    const gatewayA = new LiveRequests(r.redis, `${r.prefix}a-`);
    const gatewayB = new LiveRequests(r.duplicate(), `${r.prefix}a-`);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? gatewayA : gatewayB).admit('alice', `gen:alice:r${i}`, { user: 5, deployment: 100 }),
      ),
    );
    assert.equal(answers.filter((a) => a.admitted).length, 5);
    assert.ok(answers.every((a) => a.admitted || (a.over === 'user' && a.count === 5)));
    const again = answers.findIndex((a) => a.admitted);
    assert.deepEqual(
      await gatewayA.admit('alice', `gen:alice:r${again}`, { user: 5, deployment: 100 }),
      { admitted: true, userLive: 5 },
      'a request already live is admitted again, taking no second place',
    );
    assert.equal(await gatewayA.total(), 5);
  });

  test("the deployment's cap holds across users, and releasing frees a place", async () => {
    const live = new LiveRequests(r.redis, `${r.prefix}b-`);
    const caps = { user: 10, deployment: 3 };
    for (const user of ['u1', 'u2', 'u3']) assert.ok((await live.admit(user, `gen:${user}:x`, caps)).admitted);
    assert.deepEqual(await live.admit('u4', 'gen:u4:x', caps), { admitted: false, over: 'deployment', count: 3 });
    await live.release('gen:u2:x');
    assert.equal(await live.isLive('u2', 'gen:u2:x'), false);
    assert.ok((await live.admit('u4', 'gen:u4:x', caps)).admitted);
  });

  test('entries older than any request can live are dropped as leaked', async () => {
    const live = new LiveRequests(r.redis, `${r.prefix}c-`);
    const t0 = 1_800_000_000_000;
    await live.admit('old', 'gen:old:1', { user: 1, deployment: 10 }, t0);
    const later = t0 + LIVE_MAX_AGE_MS + 1;
    assert.ok((await live.admit('old', 'gen:old:2', { user: 1, deployment: 10 }, later)).admitted);
  });

  test("the control worker's terminal write releases the request; the workflow id names its user", async () => {
    assert.equal(userOfWorkflowId('gen:bob:req:with:colons'), 'bob');
    const live = new LiveRequests(r.redis, `${r.prefix}d-`);
    await live.admit('bob', 'gen:bob:1', { user: 5, deployment: 5 });
    const log = new OutcomeCountingEventLog(
      new RedisEventLog(r.redis, { prefix: `${r.prefix}d-events-` }),
      new GlobalFailureRate(r.redis, `${r.prefix}d-`),
      (err) => assert.fail(String(err)),
      live,
    );
    await log.publish('gen:bob:1', { type: 'completed', images: [] }, 'terminal');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await live.isLive('bob', 'gen:bob:1'), false);
  });
});
