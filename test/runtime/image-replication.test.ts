// Replication of stored images between regions (runtime/image-replication.ts) on a real Redis and filesystem stores:
// what one region announces is copied into each peer, once, in order, with its metadata; a copy that fails stays
// pending and is taken over later; a region whose replicators were away catches up; an unreadable entry is dropped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import {
  ImageReplicator,
  replicationStreamKey,
  ReplicationLog,
  type ReplicationOutcome,
} from '../../runtime/image-replication';
import { FsObjectStore, type ObjectStore } from '../../runtime/object-store';
import { RegionStores } from '../../runtime/region-stores';
import { testRedis, type TestRedis } from '../helpers/redis';

const image = (n: number): string => `images/user-1/req-${n}/0-0123456789abcdef0123456789abcdef.png`;
const manifest = (n: number): string => `images/user-1/req-${n}/manifest.json`;

describe('image replication between regions', () => {
  let redis: TestRedis;
  let root: string;
  let west: FsObjectStore;
  let east: FsObjectStore;
  const log = pino({ level: 'silent' });
  const replicators: ImageReplicator[] = [];

  before(async () => {
    redis = await testRedis();
    root = await mkdtemp(path.join(os.tmpdir(), 'atelier-replication-'));
    west = new FsObjectStore(path.join(root, 'us-west'));
    east = new FsObjectStore(path.join(root, 'us-east'));
  });
  after(async () => {
    for (const r of replicators) await r.stop();
    await redis.cleanup();
    await rm(root, { recursive: true, force: true });
  });

  /** A replicator of us-east, copying from us-west's store (or the one given), reporting into `outcomes`. */
  function eastReplicator(
    outcomes: ReplicationOutcome[],
    { origin = west as ObjectStore, consumer = 'east-1', claimIdleMs = 30_000 } = {},
  ): ImageReplicator {
    const replicator = new ImageReplicator({
      redis: redis.duplicate(),
      prefix: redis.prefix,
      stores: new RegionStores('us-east', east, [{ region: 'us-west', store: origin }]),
      consumer,
      log,
      claimIdleMs,
      onOutcome: (o) => outcomes.push(o),
    });
    replicators.push(replicator);
    return replicator;
  }

  const announce = (keys: string[]): Promise<void> =>
    new ReplicationLog(redis.redis, redis.prefix, ['us-east']).announce('us-west', keys);

  test("announced before any replicator ran, copied into the peer's store once, with its metadata", async () => {
    await west.put(image(1), Buffer.from('png-1'), { requestId: 'req-1', seed: '7' });
    await west.put(manifest(1), Buffer.from('{"images":[]}'), {}, 'application/json');
    await announce([image(1), manifest(1)]);
    const outcomes: ReplicationOutcome[] = [];
    const replicator = eastReplicator(outcomes);
    assert.equal(await replicator.runOnce(100), 1);
    const copied = await east.get(image(1));
    assert.equal(copied?.body.toString(), 'png-1');
    assert.deepEqual(copied?.info.metadata, { requestId: 'req-1', seed: '7' });
    assert.equal((await east.head(manifest(1)))?.contentType, 'application/json');
    assert.equal(outcomes.length, 1);
    assert.equal(outcomes[0]?.outcome, 'copied');
    assert.ok((outcomes[0]?.lagSeconds ?? -1) >= 0);
    assert.equal(await replicator.runOnce(100), 0, 'acknowledged: not handed out again');
    assert.equal(await redis.redis.xlen(replicationStreamKey(redis.prefix, 'us-east')), 0, 'and removed');
  });

  test('a copy that fails stays pending and is taken over once idle, by another replicator of the region', async () => {
    await west.put(image(2), Buffer.from('png-2'));
    await announce([image(2)]);
    const failing: ObjectStore = {
      put: () => Promise.reject(new Error('origin unreachable')),
      get: () => Promise.reject(new Error('origin unreachable')),
      getStream: () => Promise.reject(new Error('origin unreachable')),
      head: () => Promise.reject(new Error('origin unreachable')),
      delete: () => Promise.reject(new Error('origin unreachable')),
    };
    const first: ReplicationOutcome[] = [];
    assert.equal(
      await eastReplicator(first, { origin: failing, consumer: 'east-1', claimIdleMs: 200 }).runOnce(100),
      1,
    );
    assert.deepEqual(
      first.map((o) => o.outcome),
      ['failed'],
    );
    assert.equal(await east.head(image(2)), null);

    const second: ReplicationOutcome[] = [];
    const taker = eastReplicator(second, { consumer: 'east-2', claimIdleMs: 200 });
    assert.equal(await taker.runOnce(50), 0, 'not yet: the entry has not been idle long enough');
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await taker.runOnce(50), 1, 'claimed after 200 ms idle');
    assert.equal((await east.get(image(2)))?.body.toString(), 'png-2');
    assert.deepEqual(
      second.map((o) => o.outcome),
      ['copied'],
    );
  });

  test('running in the background it copies as announcements arrive, and skips what is already there', async () => {
    const outcomes: ReplicationOutcome[] = [];
    const replicator = eastReplicator(outcomes, { consumer: 'east-bg' });
    replicator.start();
    await east.put(image(3), Buffer.from('png-3'));
    await west.put(image(3), Buffer.from('png-3'));
    await west.put(image(4), Buffer.from('png-4'));
    await announce([image(3)]);
    await announce([image(4), 'images/user-1/req-gone/0-0123456789abcdef0123456789abcdef.png']);
    const deadline = Date.now() + 10_000;
    while (outcomes.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      outcomes.map((o) => o.outcome),
      ['copied', 'copied'],
    );
    assert.equal((await east.get(image(4)))?.body.toString(), 'png-4');
    assert.equal(
      (await east.head('images/user-1/req-gone/0-0123456789abcdef0123456789abcdef.png')) ?? null,
      null,
      'a key gone at the origin is nothing to copy',
    );
    await replicator.stop();
  });

  test('an unreadable entry is dropped, not retried forever', async () => {
    await redis.redis.xadd(replicationStreamKey(redis.prefix, 'us-east'), '*', 'origin', 'us-west', 'keys', '{oops');
    const outcomes: ReplicationOutcome[] = [];
    assert.equal(await eastReplicator(outcomes, { consumer: 'east-3' }).runOnce(100), 1);
    assert.deepEqual(
      outcomes.map((o) => o.outcome),
      ['skipped'],
    );
    assert.equal(await redis.redis.xlen(replicationStreamKey(redis.prefix, 'us-east')), 0);
  });
});
