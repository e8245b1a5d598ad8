// One place that creates ioredis connections, so every process retries the same way while Redis restarts.
import { Redis } from 'ioredis';

export { Redis };

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Prefix of every Redis key of a deployment unless ATELIER_REDIS_PREFIX says otherwise. */
export const DEFAULT_REDIS_PREFIX = 'atelier:';

/**
 * Connects lazily-but-eagerly (ioredis connects at construction) with bounded exponential reconnect back-off.
 * Commands issued while disconnected are queued (up to `maxRetriesPerRequest` reconnects) rather than failing
 * at once, which rides over a short Redis restart.
 */
export function createRedis(url: string, name: string): Redis {
  return new Redis(url, {
    connectionName: `atelier:${name}`,
    // Give up on a single command after ~20 reconnect attempts; the caller's retry policy takes over.
    maxRetriesPerRequest: 20,
    retryStrategy: (times) => Math.min(2000, 50 * 2 ** Math.min(times, 6)),
    enableAutoPipelining: true,
  });
}
