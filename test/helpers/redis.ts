// A real Redis for tests: REDIS_URL (npm test starts one) or a redis-server started here on a free port. Each
// caller gets a unique key prefix and removes its keys afterwards, so test files never see each other's data.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startEphemeralRedis } from '../../infra/redis-server';

export interface TestRedis {
  readonly redis: Redis;
  readonly url: string;
  /** Unique per call, ends with ':'. */
  readonly prefix: string;
  /** A fresh connection to the same server (e.g. for pub/sub). */
  duplicate(): Redis;
  cleanup(): Promise<void>;
}

let ephemeral: Promise<{ url: string; stop: () => Promise<void> }> | undefined;

async function resolveUrl(): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  ephemeral ??= startEphemeralRedis().then((server) => {
    process.once('exit', () => void server.stop());
    return server;
  });
  return (await ephemeral).url;
}

/**
 * Stops the redis-server this process started (when REDIS_URL was not set). Scripts call it when done: the running
 * child would otherwise keep their process alive.
 */
export async function stopOwnTestRedis(): Promise<void> {
  const started = ephemeral;
  ephemeral = undefined;
  if (started) await (await started).stop();
}

export async function testRedis(): Promise<TestRedis> {
  const url = await resolveUrl();
  const redis = new Redis(url, { maxRetriesPerRequest: 3 });
  const prefix = `test:${randomUUID().slice(0, 8)}:`;
  const extra: Redis[] = [];
  return {
    redis,
    url,
    prefix,
    duplicate() {
      const r = new Redis(url, { maxRetriesPerRequest: 3 });
      extra.push(r);
      return r;
    },
    async cleanup() {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
      for (const r of extra) r.disconnect();
      redis.disconnect();
    },
  };
}
