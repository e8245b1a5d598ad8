// The per-request event log: sequence numbers, dedupe, catch-up of events published before following, ordering
// under concurrent publishers, and recovery of messages lost while the subscriber was disconnected.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisEventLog } from '../../runtime/event-log';
import type { SequencedEvent } from '../../core/events';
import { testRedis, type TestRedis } from '../helpers/redis';

function collector(): { events: SequencedEvent[]; until: (n: number) => Promise<void> } {
  const events: SequencedEvent[] = [];
  return {
    events,
    until: async (n) => {
      const deadline = Date.now() + 5000;
      while (events.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out with ${events.length}/${n} events`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

describe('RedisEventLog', () => {
  let r: TestRedis;
  let log: RedisEventLog;
  before(async () => {
    r = await testRedis();
    log = new RedisEventLog(r.redis, { prefix: r.prefix });
  });
  after(async () => r.cleanup());

  test('assigns increasing sequence numbers per log and reads them back in order', async () => {
    assert.equal(await log.publish('gen:u:a', { type: 'status', status: 'queued' }), 1);
    assert.equal(await log.publish('gen:u:a', { type: 'progress', step: 1, totalSteps: 2 }), 2);
    assert.equal(await log.publish('gen:u:b', { type: 'status', status: 'queued' }), 1);
    const events = await log.read('gen:u:a', 0);
    assert.deepEqual(events, [
      { type: 'status', status: 'queued', seq: 1 },
      { type: 'progress', step: 1, totalSteps: 2, seq: 2 },
    ]);
    assert.deepEqual(await log.read('gen:u:a', 1), [{ type: 'progress', step: 1, totalSteps: 2, seq: 2 }]);
  });

  test('a dedupe key publishes once and returns the first sequence number on repeats', async () => {
    const first = await log.publish('gen:u:d', { type: 'completed', images: [] }, 'terminal');
    const again = await log.publish(
      'gen:u:d',
      { type: 'failed', code: 'CANCELLED', message: 'x', retryable: false },
      'terminal',
    );
    assert.equal(again, first);
    const events = await log.read('gen:u:d', 0);
    assert.equal(events.length, 1);
    assert.equal(events[0]?.type, 'completed');
  });

  test('a follower gets earlier and later events exactly once, in order, even with concurrent publishers', async () => {
    const sub = log.createSubscriber(r.duplicate());
    await log.publish('gen:u:f', { type: 'accepted', workflowId: 'gen:u:f' }, 'accepted');
    await log.publish('gen:u:f', { type: 'status', status: 'queued' });
    const c = collector();
    const stop = await sub.follow('gen:u:f', 0, (e) => c.events.push(e));
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => log.publish('gen:u:f', { type: 'progress', step: i + 1, totalSteps: 50 })),
    );
    await c.until(52);
    assert.deepEqual(
      c.events.map((e) => e.seq),
      Array.from({ length: 52 }, (_, i) => i + 1),
    );
    await stop();
    await log.publish('gen:u:f', { type: 'completed', images: [] });
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(c.events.length, 52, 'no delivery after unfollow');
    await sub.close();
  });

  test('follow from a later seq skips what the client already has', async () => {
    for (let i = 0; i < 5; i++) await log.publish('gen:u:s', { type: 'progress', step: i + 1, totalSteps: 5 });
    const sub = log.createSubscriber(r.duplicate());
    const c = collector();
    const stop = await sub.follow('gen:u:s', 3, (e) => c.events.push(e));
    await c.until(2);
    assert.deepEqual(
      c.events.map((e) => e.seq),
      [4, 5],
    );
    await stop();
    await sub.close();
  });

  test('events published while the subscriber connection is down are delivered after it reconnects', async () => {
    const subConn = r.duplicate();
    const sub = log.createSubscriber(subConn);
    const c = collector();
    await sub.follow('gen:u:r', 0, (e) => c.events.push(e));
    await log.publish('gen:u:r', { type: 'status', status: 'queued' });
    await c.until(1);
    // Kill the subscriber's connection from the server side; ioredis reconnects and re-subscribes.
    const clients = (await r.redis.client('LIST')) as string;
    const id = clients
      .split('\n')
      .find((line) => line.includes('sub=1') || line.includes('psub=0 sub=1'))
      ?.match(/id=(\d+)/)?.[1];
    assert.ok(id, 'found the subscriber connection');
    await r.redis.client('KILL', 'ID', id);
    await log.publish('gen:u:r', { type: 'status', status: 'generating' }); // lost on pub/sub: nobody subscribed
    await log.publish('gen:u:r', { type: 'completed', images: [] });
    await c.until(3);
    assert.deepEqual(
      c.events.map((e) => e.seq),
      [1, 2, 3],
    );
    await sub.close();
  });
});
