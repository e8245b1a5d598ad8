// Per-user rate limit on `generate`, shared by every gateway instance through Redis (rate-limiter-flexible's
// atomic counter script). While Redis is unreachable an in-memory limiter with the same budget stands in, so an
// outage neither blocks every request nor lifts the limit entirely.
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

export interface RequestRateLimiter {
  /** Takes one request from the user's budget. */
  consume(userId: string): Promise<RateDecision>;
}

export class RedisRequestRateLimiter implements RequestRateLimiter {
  private readonly limiter: RateLimiterRedis;

  constructor(redis: Redis, prefix: string, perMinute: number) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${prefix}ratelimit:generate`,
      points: perMinute,
      duration: 60,
      // ioredis queues commands while disconnected; fail over to the insurance limiter at once instead.
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: perMinute, duration: 60 }),
    });
  }

  async consume(userId: string): Promise<RateDecision> {
    try {
      await this.limiter.consume(userId);
      return { allowed: true };
    } catch (err) {
      // The library rejects with a RateLimiterRes when the budget is spent, with an Error otherwise.
      if (err instanceof RateLimiterRes)
        return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(err.msBeforeNext)) };
      throw err;
    }
  }
}
