// One place that creates ioredis connections, so every process retries the same way while Redis restarts.
import { Redis } from 'ioredis';

export { Redis };

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Prefix of every Redis key of a deployment unless ATELIER_REDIS_PREFIX says otherwise. */
export const DEFAULT_REDIS_PREFIX = 'atelier:';

/** Default of ATELIER_REDIS_COMMAND_TIMEOUT_MS (runtime/shared-options.ts). */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2000;

/**
 * Connects eagerly (ioredis connects at construction) with bounded exponential reconnect back-off. Every command
 * has a deadline (`commandTimeoutMs`, counted from when it is issued, queued while disconnected or sent): a hung or
 * restarting Redis then fails a command within that time instead of never answering, and the caller decides (the
 * gateway answers SERVICE_UNAVAILABLE, activities retry, the rate limiter falls back to memory).
 */
export function createRedis(
  url: string,
  name: string,
  commandTimeoutMs: number = DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
): Redis {
  return new Redis(url, {
    connectionName: `atelier:${name}`,
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 20,
    retryStrategy: (times) => Math.min(2000, 50 * 2 ** Math.min(times, 6)),
    enableAutoPipelining: true,
  });
}
