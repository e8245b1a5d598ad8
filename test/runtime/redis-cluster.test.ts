// Atelier's Redis code on a real three-master Redis Cluster (infra/redis-cluster.ts), through the same client factory
// the processes use (runtime/redis.ts, `redis+cluster://`): the request event log, rate limits, sessions, and the
// stores whose Lua scripts and MULTIs touch several keys, which a Cluster runs only when those keys share a slot.
// Requests are chosen so that their keys live on different masters, and the test checks that they do.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { MODEL_BREAKER } from '../../core/circuit-breaker';
import type { SequencedEvent } from '../../core/events';
import { DEFAULT_PLAN } from '../../core/plans';
import { RedisRequestRateLimiter } from '../../gateway/rate-limit';
import { RedisSessionStore } from '../../gateway/session-store';
import { startRedisCluster, type RedisCluster } from '../../infra/redis-cluster';
import { attachRedisCluster } from '../../infra/stack-redis';
import { RedisApiKeyStore } from '../../runtime/api-key-store';
import { RedisBreakerStore } from '../../runtime/breaker-store';
import { CLUSTER_SWEEP_MS, EventSubscriber, RedisEventLog } from '../../runtime/event-log';
import { GlobalFailureRate } from '../../runtime/global-breaker';
import { ReplicationLog, replicationStreamKey } from '../../runtime/image-replication';
import { LiveRequests } from '../../runtime/live-requests';
import { QueuePositions } from '../../runtime/queue-positions';
import { createLogger } from '../../runtime/logger';
import { createRedis, isRedisClusterUrl, parseRedisClusterUrl, type RedisClient } from '../../runtime/redis';
import { WorkerControlStore } from '../../runtime/worker-control';
import { eventually } from '../helpers/eventually';

type SlotRange = [number, number, [string, number, ...unknown[]], ...unknown[]];

describe('Atelier on a three-master Redis Cluster', () => {
  let dir: string;
  let cluster: RedisCluster;
  let redis: RedisClient;
  let slots: SlotRange[];
  const clients: RedisClient[] = [];
  /** Subscriptions to end before the clients close, even when a test failed before ending its own. */
  const closers: (() => Promise<void>)[] = [];
  // Fixed, so that which master each key lands on is the same every run (the cluster is private and new anyway).
  const prefix = 'test:cluster:';

  /** A new Cluster client as the processes make them, closed after the tests. */
  const connect = (name: string): RedisClient => {
    const client = createRedis(cluster.url, name);
    clients.push(client);
    return client;
  };

  /** `connect`, once the client is ready (the rate limiter uses its memory stand-in until then). */
  const connectReady = async (name: string): Promise<RedisClient> => {
    const client = connect(name);
    await eventually(() => client.status === 'ready', 5_000, `${name} ready`);
    return client;
  };

  /** The port of the master that owns `key`'s slot. */
  const masterOf = async (key: string): Promise<number> => {
    const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
    const range = slots.find(([first, last]) => slot >= first && slot <= last);
    assert.ok(range, `slot ${slot} has an owner`);
    return range[2][1];
  };

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-redis-cluster-'));
    cluster = await startRedisCluster({ dir });
    redis = connect('test');
    slots = (await redis.call('CLUSTER', 'SLOTS')) as SlotRange[];
  });
  after(async () => {
    for (const close of closers) await close().catch(() => undefined);
    for (const client of clients) client.disconnect();
    await cluster?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('three masters answer, share the slots, and refuse a MULTI across slots', async () => {
    assert.ok(isRedisClusterUrl(cluster.url), cluster.url);
    assert.equal(cluster.nodes.length, 3);
    assert.equal(new Set(slots.map((range) => range[2][1])).size, 3, 'three masters own slots');
    assert.equal(
      slots.reduce((sum, [first, last]) => sum + last - first + 1, 0),
      16384,
      'every slot has an owner',
    );
    // What every fix below is about: without a shared hash tag, keys changed together fail on a Cluster.
    await assert.rejects(redis.multi().set(`${prefix}{a}`, '1').set(`${prefix}{b}`, '1').exec());
  });

  test('the event log numbers, deduplicates and delivers in order, for requests on different masters', async () => {
    const log = new RedisEventLog(redis, { prefix });
    const ids = ['gen:alice:r1', 'gen:bob:r2', 'gen:carol:r3', 'gen:dave:r4'];
    const owners = await Promise.all(ids.map((id) => masterOf(log.keys(id).stream)));
    assert.ok(new Set(owners).size >= 2, `requests' logs on different masters: ${owners.join(', ')}`);
    for (const id of ids) {
      const k = log.keys(id);
      const keySlots = await Promise.all(
        [k.seq, k.stream, k.dedupe, k.progress].map((key) => redis.cluster('KEYSLOT', key)),
      );
      assert.equal(new Set(keySlots).size, 1, `one slot for all of ${id}'s keys`);
    }

    const subscriber = log.createSubscriber(connect('test-sub'));
    closers.push(() => subscriber.close());
    const got = new Map<string, SequencedEvent[]>(ids.map((id) => [id, []]));
    for (const id of ids) {
      const first = await log.append(id, { type: 'accepted', workflowId: id }, 'accepted');
      assert.deepEqual(first, { seq: 1, published: true });
      assert.deepEqual(await log.append(id, { type: 'accepted', workflowId: id }, 'accepted'), {
        seq: 1,
        published: false,
      });
      await subscriber.follow(id, 0, (event) => got.get(id)?.push(event));
    }
    // Progress first, and the terminal once every follower has it: a terminal trims the progress from the stream, and
    // a follower that catches up after it (a pub/sub message crossing the cluster bus late) rightly skips what is gone.
    const delivered = (n: number) => () => [...got.values()].every((events) => events.length === n);
    for (const id of ids) {
      for (let step = 1; step <= 3; step++) await log.publish(id, { type: 'progress', step, totalSteps: 3 });
    }
    await eventually(delivered(4), 5_000, 'every progress event');
    for (const id of ids) await log.publish(id, { type: 'completed', images: [] }, 'terminal');
    await eventually(delivered(5), 5_000, 'every terminal event');
    for (const [id, events] of got) {
      assert.deepEqual(
        events.map((e) => `${e.seq}:${e.type}`),
        ['1:accepted', '2:progress', '3:progress', '4:progress', '5:completed'],
        `${id}: every event once, in order`,
      );
    }
    // Ended: of the progress only the newest is kept, as on one Redis.
    assert.deepEqual(
      (await log.read(ids[0] ?? '', 0)).map((e) => e.seq),
      [1, 4, 5],
    );
    // Each request's stream really is on its master.
    for (const [i, id] of ids.entries()) {
      const node = new Redis({ host: '127.0.0.1', port: owners[i] ?? 0, lazyConnect: true });
      await node.connect();
      assert.equal(await node.exists(log.keys(id).stream), 1, `${id}'s stream on its owner`);
      node.disconnect();
    }
  });

  test('rate limits count in the cluster, shared by every limiter, per user', async () => {
    const users = ['alice', 'bob', 'dave', 'erin'];
    const keyPrefix = `${prefix}ratelimit:generate`;
    const owners = await Promise.all(users.map((u) => masterOf(`${keyPrefix}:${u}`)));
    assert.ok(new Set(owners).size >= 2, `users' counters on different masters: ${owners.join(', ')}`);
    const limiter = new RedisRequestRateLimiter(await connectReady('limiter-a'), prefix, 2);
    for (const user of users) {
      assert.deepEqual(await limiter.consume(user), { allowed: true });
      assert.deepEqual(await limiter.consume(user), { allowed: true });
    }
    for (const user of users) assert.equal(await redis.get(`${keyPrefix}:${user}`), '2', `${user}'s counter`);
    // A second gateway's limiter sees what the first spent: the counters are in Redis, not in its memory stand-in.
    const other = new RedisRequestRateLimiter(await connectReady('limiter-b'), prefix, 2);
    for (const user of users) {
      const decision = await other.consume(user);
      assert.equal(decision.allowed, false, `${user} has spent the minute's budget`);
      assert.ok(!decision.allowed && decision.retryAfterMs > 0);
    }
    assert.deepEqual(await other.consume('frank'), { allowed: true }, 'another user has their own budget');
  });

  test('a follower whose subscription was lost still gets the terminal event, from the sweep', async () => {
    // What a Cluster client's silent move of its subscriber to another node looks like to a follower: messages stop
    // arriving, with no reconnect to say so. Unsubscribing under the follower's feet does the same.
    const log = new RedisEventLog(redis, { prefix: `${prefix}sweep:` });
    const sub = connect('test-sweep-sub');
    const subscriber = new EventSubscriber(log, sub, 200);
    closers.push(() => subscriber.close());
    const got: string[] = [];
    const id = 'gen:alice:swept';
    await log.append(id, { type: 'accepted', workflowId: id }, 'accepted');
    await subscriber.follow(id, 0, (event) => got.push(`${event.seq}:${event.type}`));
    await sub.unsubscribe(log.keys(id).channel);
    await log.publish(id, { type: 'completed', images: [] }, 'terminal');
    await eventually(() => got.length === 2, 5_000, 'the terminal event, read by the sweep');
    assert.deepEqual(got, ['1:accepted', '2:completed']);
    // On a Cluster the sweep is on by default; a follower on one server relies on its reconnects instead.
    assert.equal(CLUSTER_SWEEP_MS, 5_000);
  });

  test("a burst of logins, rate-limit checks and event appends at once, as a gateway's burst makes them", async () => {
    // Issued in the same tick, so a client that auto-pipelines would group scripts by their first argument (not a
    // key) across slots and throw inside ioredis (bench:load's burst crashed the gateway that way).
    const client = await connectReady('burst');
    const limiter = new RedisRequestRateLimiter(client, `${prefix}burst:`, 1_000);
    const sessions = new RedisSessionStore(client, `${prefix}burst:`, 60);
    const log = new RedisEventLog(client, { prefix: `${prefix}burst:` });
    const keys = new RedisApiKeyStore(client, `${prefix}burst:`);
    const n = 150;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => [
        limiter.consume(`user-${i}`),
        sessions.create({ connectionId: `c-${i}`, userId: `user-${i}`, gatewayId: 'gw', connectedAt: i }),
        log.append(`burst-${i}`, { type: 'progress', step: 1, totalSteps: 4 }),
        keys.authenticate(`bench-key-${i}`),
      ]).flat(),
    );
    const failed = results.filter((r) => r.status === 'rejected');
    assert.deepEqual(
      failed.map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );
    assert.equal(client.status, 'ready');
  });

  test('sessions are created, read, refreshed and deleted', async () => {
    const sessions = new RedisSessionStore(redis, prefix, 60);
    const record = { connectionId: 'c-1', userId: 'alice', gatewayId: 'gw-1', connectedAt: 1_700_000_000_000 };
    await sessions.create(record);
    assert.deepEqual(await sessions.get('c-1'), record);
    assert.ok((await redis.ttl(sessions.key('c-1'))) > 0, 'a session expires without heartbeats');
    await redis.expire(sessions.key('c-1'), 5);
    await sessions.refresh('c-1');
    assert.ok((await redis.ttl(sessions.key('c-1'))) > 5, 'a pong pushes the expiry back');
    await sessions.delete('c-1');
    assert.equal(await sessions.get('c-1'), null);
  });

  test('API keys: create, rotate and revoke change the digest key and the index together', async () => {
    const keys = new RedisApiKeyStore(redis, prefix);
    const created = await keys.create('dana', DEFAULT_PLAN);
    assert.equal((await keys.authenticate(created.key))?.userId, 'dana');
    const rotated = await keys.rotate(created.keyId);
    assert.ok(rotated);
    assert.equal(await keys.authenticate(created.key), null);
    assert.equal((await keys.authenticate(rotated.key))?.userId, 'dana');
    assert.equal(await keys.revoke(created.keyId), true);
    assert.equal(await keys.authenticate(rotated.key), null);
    assert.deepEqual(await keys.list(), []);
  });

  test('the worker registry and operator orders, with their pub/sub nudge', async () => {
    const control = new WorkerControlStore(redis, prefix);
    let nudges = 0;
    closers.push(await control.watch(() => nudges++));
    const record = {
      workerId: 'w-1',
      region: 'us-west',
      gpuType: 'a10g',
      state: 'serving' as const,
      holds: {},
      breaker: 'CLOSED',
      ready: true,
      announcedAt: Date.now(),
    };
    await control.announce(record);
    assert.deepEqual(await control.workers(), [record]);
    await control.orderFleet('us-west', 'a10g', 'pause');
    assert.deepEqual(await control.pausedFleets(), ['us-west:a10g']);
    assert.deepEqual(await control.ordersFor('w-1', 'us-west', 'a10g'), { pausedBy: 'fleet', drain: false });
    await control.orderFleet('us-west', 'a10g', 'resume');
    assert.deepEqual(await control.pausedFleets(), []);
    await control.withdraw('w-1');
    assert.deepEqual(await control.workers(), []);
    await eventually(() => nudges === 2, 5_000, 'a nudge per fleet order');
  });

  test('live requests, queue positions, breakers and replication announcements', async () => {
    const live = new LiveRequests(redis, prefix);
    assert.deepEqual(await live.admit('erin', 'gen:erin:1', { user: 1, deployment: 10 }), {
      admitted: true,
      userLive: 1,
    });
    assert.deepEqual(await live.admit('erin', 'gen:erin:2', { user: 1, deployment: 10 }), {
      admitted: false,
      over: 'user',
      count: 1,
    });
    await live.release('gen:erin:1');
    assert.equal(await live.total(), 0);

    const queue = new QueuePositions(redis, prefix);
    const fast = { taskQueue: 'us-west.gpu-a10g', tier: 'fast' } as const;
    await queue.enter('gen:erin:3', { ...fast, tier: 'turbo' });
    await queue.enter('gen:erin:4', fast);
    assert.equal(await queue.position('gen:erin:4', fast, ['turbo']), 2);
    await queue.leave('gen:erin:3');
    assert.equal(await queue.position('gen:erin:4', fast, ['turbo']), 1);

    const rate = new GlobalFailureRate(redis, prefix);
    await rate.record(true);
    await rate.record(false);
    assert.deepEqual(await rate.read(), { total: 2, failed: 1, open: false });
    const breakers = new RedisBreakerStore(redis, `${prefix}breaker:model:`, MODEL_BREAKER);
    assert.equal((await breakers.record('sdxl', false)).after, 'CLOSED');
    assert.equal((await breakers.reading('sdxl')).snapshot.failures, 1);

    const peers = ['us-east', 'eu-west', 'ap-south'];
    const owners = await Promise.all(peers.map((peer) => masterOf(replicationStreamKey(prefix, peer))));
    assert.ok(new Set(owners).size >= 2, `peers' streams on different masters: ${owners.join(', ')}`);
    await new ReplicationLog(redis, prefix, peers).announce('us-west', ['images/a.png']);
    for (const peer of peers) assert.equal(await redis.xlen(replicationStreamKey(prefix, peer)), 1, peer);
  });

  test('the stack attaches to a cluster URL and never starts a server in its place', async () => {
    const log = createLogger('test.redis-cluster');
    const attached = await attachRedisCluster(cluster.url, log);
    assert.equal(attached.started, false);
    assert.equal(attached.process, undefined);
    const [first] = parseRedisClusterUrl(cluster.url).nodes;
    assert.ok(first);
    await assert.rejects(attachRedisCluster(`redis+cluster://127.0.0.1:${first.port + 1}`, log), /No Redis Cluster/);
    assert.deepEqual(parseRedisClusterUrl('redis+cluster://u:p%40ss@10.0.0.1:7000,[::1]:7001,redis-2'), {
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 7001 },
        { host: 'redis-2', port: 6379 },
      ],
      username: 'u',
      password: 'p@ss',
    });
    assert.equal(isRedisClusterUrl('redis://127.0.0.1:6379'), false);
  });

  test('started again on its directory, the cluster comes back on the same ports with its data', async () => {
    const log = new RedisEventLog(redis, { prefix });
    const before = await log.read('gen:carol:r3', 0);
    assert.ok(before.length > 0);
    const probe = createRedis(cluster.url, 'probe', 300);
    probe.on('error', () => undefined);
    await probe.ping();
    for (const close of closers.splice(0)) await close();
    for (const client of clients.splice(0)) client.disconnect();
    await cluster.stop();
    // While no node answers, a command still fails within its deadline rather than waiting in the client's queue.
    for (let attempt = 0; attempt < 3; attempt++) {
      const outcome = await Promise.race([
        probe.get(`${prefix}x`).then(
          () => 'answered',
          () => 'failed',
        ),
        new Promise((resolve) => setTimeout(resolve, 3_000, 'still waiting')),
      ]);
      assert.equal(outcome, 'failed', `command ${attempt + 1} with the cluster down`);
    }
    probe.disconnect();
    const again = await startRedisCluster({ dir });
    assert.equal(again.url, cluster.url);
    cluster = again;
    redis = connect('test-again');
    assert.deepEqual(await new RedisEventLog(redis, { prefix }).read('gen:carol:r3', 0), before);
  });
});
