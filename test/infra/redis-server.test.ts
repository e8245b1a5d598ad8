// The stack's Redis: reused when one answers, started (with its data kept across restarts) when none does, and a
// private throwaway one for test runs.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RedisStartError, ensureRedis, redisAnswers, startEphemeralRedis } from '../../infra/redis-server';
import { freePort } from '../../infra/ports';
import { createLogger } from '../../runtime/logger';

const log = createLogger('test.redis-server');
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

async function withClient<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

describe('ensureRedis', () => {
  test('starts redis-server when nothing answers, and its data survives a restart', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-redis-test-'));
    cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }));
    const url = `redis://127.0.0.1:${await freePort()}`;
    assert.equal(await redisAnswers(url), false);

    const first = await ensureRedis({ url, dataDir, log });
    cleanups.push(() => first.stop());
    assert.equal(first.started, true);
    assert.equal(await redisAnswers(url), true);
    await withClient(url, (r) => r.set('atelier:test:kept', 'across restarts'));
    await first.stop();
    assert.equal(await redisAnswers(url), false, 'stop() must stop the server it started');
    assert.ok(existsSync(path.join(dataDir, 'appendonlydir')), 'append-only persistence lives in the data dir');

    const second = await ensureRedis({ url, dataDir, log });
    cleanups.push(() => second.stop());
    assert.equal(second.started, true);
    assert.equal(await withClient(url, (r) => r.get('atelier:test:kept')), 'across restarts');
    await second.stop();
  });

  test('reuses a Redis that already answers and leaves it running on stop()', async () => {
    const existing = await startEphemeralRedis();
    cleanups.push(() => existing.stop());
    const dataDir = path.join(os.tmpdir(), 'atelier-redis-unused');
    const reused = await ensureRedis({ url: existing.url, dataDir, log });
    assert.equal(reused.started, false);
    assert.equal(reused.process, undefined);
    await reused.stop();
    assert.equal(await redisAnswers(existing.url), true, 'a Redis we did not start must keep running');
    assert.equal(existsSync(dataDir), false, 'nothing is written when reusing');
  });

  test('a remote URL with no Redis behind it is an error, not an attempt to start one', async () => {
    await assert.rejects(
      ensureRedis({ url: 'redis://redis.invalid:6379', dataDir: os.tmpdir(), log }),
      (err: unknown) => {
        assert.ok(err instanceof RedisStartError);
        assert.match(err.message, /not a local address/);
        return true;
      },
    );
  });

  test('a local port held by something that is not Redis is reported with the server output', async () => {
    const net = await import('node:net');
    const blocker = net.createServer((socket) => {
      // Consume what the probe sends, so its disconnect is seen and close() below can finish.
      socket.resume();
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-redis-test-'));
    cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }));
    await assert.rejects(ensureRedis({ url: `redis://127.0.0.1:${port}`, dataDir, log }), (err: unknown) => {
      assert.ok(err instanceof RedisStartError);
      assert.match(err.message, /exited during start-up/);
      assert.match(err.message, /[Aa]ddress already in use/);
      return true;
    });
  });
});

describe('startEphemeralRedis', () => {
  test('runs a private Redis on a free port and removes its directory on stop()', async () => {
    const redis = await startEphemeralRedis();
    cleanups.push(() => redis.stop());
    assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await withClient(redis.url, (r) => r.ping()), 'PONG');
    await redis.stop();
    assert.equal(await redisAnswers(redis.url), false);
    assert.equal(existsSync(redis.dataDir), false);
  });
});
