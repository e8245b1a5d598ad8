// The per-request event log: sequence numbers, dedupe, catch-up of events published before following, ordering
// under concurrent publishers, recovery of messages lost while the subscriber was disconnected, and the integrity
// rules: numbering never restarts, a log outlives its workflow, status and terminal events are never trimmed, and a
// failed subscription leaves nothing stale behind.
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

  test('assigns increasing sequence numbers per log, from 1 at `accepted`, and reads them back in order', async () => {
    assert.equal(await log.publish('gen:u:a', { type: 'accepted', workflowId: 'gen:u:a' }, 'accepted'), 1);
    assert.equal(await log.publish('gen:u:a', { type: 'progress', step: 1, totalSteps: 2 }), 2);
    assert.equal(await log.publish('gen:u:b', { type: 'accepted', workflowId: 'gen:u:b' }, 'accepted'), 1);
    const events = await log.read('gen:u:a', 0);
    assert.deepEqual(events, [
      { type: 'accepted', workflowId: 'gen:u:a', seq: 1 },
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
    await log.publish('gen:u:s', { type: 'accepted', workflowId: 'gen:u:s' }, 'accepted');
    for (let i = 0; i < 4; i++) await log.publish('gen:u:s', { type: 'progress', step: i + 1, totalSteps: 4 });
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
    await log.publish('gen:u:r', { type: 'accepted', workflowId: 'gen:u:r' }, 'accepted');
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

  const dropLog = async (logId: string): Promise<void> => {
    const k = log.keys(logId);
    await r.redis.del(k.seq, k.stream, k.dedupe, k.progress);
  };

  test('numbering never restarts: a log lost mid-request goes on above every number it had given', async () => {
    const logId = 'gen:u:lost';
    await log.publish(logId, { type: 'accepted', workflowId: logId }, 'accepted');
    await log.publish(logId, { type: 'status', status: 'queued' }, 'status:queued');
    await log.publish(logId, { type: 'status', status: 'pending_safety' }, 'status:pending_safety');
    const sub = log.createSubscriber(r.duplicate());
    const c = collector();
    const stop = await sub.follow(logId, 0, (e) => c.events.push(e));
    await c.until(3);
    await dropLog(logId); // Redis lost it, or it expired while the request was parked
    const terminal = await log.publish(
      logId,
      { type: 'failed', code: 'TIMED_OUT', message: 'x', retryable: true },
      'terminal',
    );
    assert.ok(terminal > 3, `the terminal's seq (${terminal}) is above the lost log's`);
    await c.until(4);
    assert.equal(c.events[3]?.type, 'failed', 'the follower delivered the outcome');
    await stop();
    await sub.close();
  });

  test('a follower that sees a lower seq re-reads: a log begun again at 1 still delivers its outcome', async () => {
    const logId = 'gen:u:again';
    await log.publish(logId, { type: 'accepted', workflowId: logId }, 'accepted');
    for (const status of ['queued', 'safety_check', 'generating'] as const) {
      await log.publish(logId, { type: 'status', status }, `status:${status}`);
    }
    const sub = log.createSubscriber(r.duplicate());
    const c = collector();
    const stop = await sub.follow(logId, 0, (e) => c.events.push(e));
    await c.until(4);
    await dropLog(logId);
    // A resubmission of the same requestId: the gateway records `accepted`, which begins a log at 1.
    assert.equal(await log.publish(logId, { type: 'accepted', workflowId: logId }, 'accepted'), 1);
    await log.publish(logId, { type: 'completed', images: [] }, 'terminal');
    await c.until(6);
    assert.deepEqual(
      c.events.slice(4).map((e) => [e.seq, e.type]),
      [
        [1, 'accepted'],
        [2, 'completed'],
      ],
    );
    await stop();
    await sub.close();
  });

  test('a running log outlives a full day in pending_safety; an ended one keeps the re-attach window', async () => {
    const logId = 'gen:u:ttl';
    await log.publish(logId, { type: 'status', status: 'pending_safety' }, 'status:pending_safety');
    const k = log.keys(logId);
    for (const key of [k.seq, k.stream, k.dedupe]) {
      assert.ok((await r.redis.ttl(key)) > 48 * 3600, `${key} lives longer than a 24 h park plus a margin`);
    }
    await log.publish(logId, { type: 'failed', code: 'TIMED_OUT', message: 'x', retryable: true }, 'terminal');
    for (const key of [k.seq, k.stream, k.dedupe]) {
      const ttl = await r.redis.ttl(key);
      assert.ok(ttl > 23 * 3600 && ttl <= 24 * 3600, `${key} keeps 24 h after the end (${ttl} s)`);
    }
  });

  test('status and terminal events are never trimmed; progress is capped, and only its last kept once the request ends', async () => {
    const small = new RedisEventLog(r.redis, { prefix: r.prefix, maxProgressEvents: 10 });
    const logId = 'gen:u:long';
    await small.publish(logId, { type: 'accepted', workflowId: logId }, 'accepted');
    await small.publish(logId, { type: 'status', status: 'queued' }, 'status:queued');
    await small.publish(logId, { type: 'status', status: 'generating' }, 'status:generating');
    for (let batch = 0; batch < 30; batch++) {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          small.publish(logId, { type: 'progress', step: batch * 100 + i + 1, totalSteps: 3000 }),
        ),
      );
    }
    const running = await small.read(logId, 0);
    assert.deepEqual(
      running.slice(0, 3).map((e) => e.type),
      ['accepted', 'status', 'status'],
      'the first events are still there after 3000 progress events',
    );
    assert.equal(running.filter((e) => e.type === 'progress').length, 10);
    const last = running.at(-1);
    assert.equal(last?.type === 'progress' ? last.step : undefined, 3000, 'the newest progress is kept');
    await small.publish(logId, { type: 'status', status: 'uploading' }, 'status:uploading');
    await small.publish(logId, { type: 'completed', images: [] }, 'terminal');
    const ended = await small.read(logId, 0);
    assert.deepEqual(
      ended.map((e) => (e.type === 'status' ? e.status : e.type)),
      ['accepted', 'queued', 'generating', 'progress', 'uploading', 'completed'],
    );
  });

  test('a failed subscribe leaves nothing stale: the next follow of that log gets live events', async () => {
    const subConn = r.duplicate();
    await subConn.ping(); // connected before following: its 'ready' re-read must not stand in for pub/sub here
    const sub = log.createSubscriber(subConn);
    const logId = 'gen:u:subfail';
    await log.publish(logId, { type: 'accepted', workflowId: logId }, 'accepted');
    const realSubscribe = subConn.subscribe.bind(subConn);
    let failures = 1;
    subConn.subscribe = ((...args: Parameters<typeof realSubscribe>) => {
      if (failures-- > 0) return Promise.reject(new Error('injected SUBSCRIBE failure'));
      return realSubscribe(...args);
    }) as typeof subConn.subscribe;
    await assert.rejects(
      sub.follow(logId, 0, () => undefined),
      /injected SUBSCRIBE failure/,
    );
    const c = collector();
    const stop = await sub.follow(logId, 0, (e) => c.events.push(e));
    await log.publish(logId, { type: 'status', status: 'queued' }, 'status:queued');
    await c.until(2); // the second live, by pub/sub: nothing else would read the stream again
    assert.equal(c.events[1]?.type, 'status');
    await stop();
    await sub.close();
  });
});
