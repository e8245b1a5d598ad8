// Per-user rate limit on `generate`, shared by every gateway instance through Redis (rate-limiter-flexible's
// atomic counter script). While Redis is unreachable an in-memory limiter with the same budget stands in, so an
// outage neither blocks every request nor lifts the limit entirely.
import type { RedisClient } from '../runtime/redis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

export interface RequestRateLimiter {
  /** Takes one request from the user's budget. */
  consume(userId: string): Promise<RateDecision>;
}

export class RedisRequestRateLimiter implements RequestRateLimiter {
  private readonly limiter: RateLimiterRedis;

  /** `keyPrefix` names the counters: `<deployment prefix>ratelimit:generate` unless told otherwise. */
  constructor(redis: RedisClient, prefix: string, perMinute: number, keyPrefix = `${prefix}ratelimit:generate`) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix,
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

/**
 * Per-user rate limits where each user's budget comes from their plan: one Redis-backed limiter per distinct rate,
 * made on first use. All of them count in the same per-user key, so a user whose plan changes keeps what they spent.
 */
export class PlanRateLimiter {
  private readonly limiters = new Map<number, RedisRequestRateLimiter>();

  constructor(
    private readonly redis: RedisClient,
    /** Key prefix of the counters, e.g. `atelier:ratelimit:generate`. */
    private readonly keyPrefix: string,
  ) {}

  consume(userId: string, perMinute: number): Promise<RateDecision> {
    let limiter = this.limiters.get(perMinute);
    if (!limiter) {
      limiter = new RedisRequestRateLimiter(this.redis, '', perMinute, this.keyPrefix);
      this.limiters.set(perMinute, limiter);
    }
    return limiter.consume(userId);
  }
}
