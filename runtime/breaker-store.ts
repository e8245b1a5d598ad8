// Circuit breakers that several processes must agree on (seed 001), kept in Redis: each breaker is one key holding its
// snapshot (core/circuit-breaker.ts). A transition reads the snapshot, applies the pure rules and writes it back with
// a compare-and-set, retried when another process changed it meanwhile, so concurrent outcomes are never lost.
import type { RedisClient } from './redis';
import {
  CLOSED_BREAKER,
  breakerState,
  recordFailure,
  recordSuccess,
  type BreakerPolicy,
  type BreakerSnapshot,
  type BreakerState,
} from '../core/circuit-breaker';
import { luaScript } from './lua-scripts';

interface CompareAndSet {
  compareAndSet(key: string, expected: string, next: string, ttlSeconds: number): Promise<number>;
}

/** A breaker's state now, and when an open one lets test traffic through. */
export interface BreakerReading {
  readonly state: BreakerState;
  readonly snapshot: BreakerSnapshot;
}

/** The transition one outcome made. */
export interface BreakerTransition {
  readonly before: BreakerState;
  readonly after: BreakerState;
  readonly snapshot: BreakerSnapshot;
}

/** A breaker unused for a day forgets itself (CLOSED again). */
const TTL_SECONDS = 86_400;

export class RedisBreakerStore {
  /** The outcome being recorded for each breaker, which the next one waits for. */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(
    private readonly redis: RedisClient,
    /** Key prefix, e.g. `atelier:breaker:model:`. */
    private readonly keyPrefix: string,
    readonly policy: BreakerPolicy,
  ) {
    if (!('compareAndSet' in redis)) {
      redis.defineCommand('compareAndSet', { numberOfKeys: 1, lua: luaScript('compare-and-set.lua') });
    }
  }

  private async read(name: string): Promise<{ raw: string; snapshot: BreakerSnapshot }> {
    const raw = (await this.redis.get(this.keyPrefix + name)) ?? '';
    return { raw, snapshot: raw === '' ? CLOSED_BREAKER : (JSON.parse(raw) as BreakerSnapshot) };
  }

  async reading(name: string, now = Date.now()): Promise<BreakerReading> {
    const { snapshot } = await this.read(name);
    return { state: breakerState(snapshot, this.policy, now), snapshot };
  }

  /**
   * Records one outcome of work on `name` and returns the transition it made. Outcomes for one breaker are recorded
   * one at a time within this process, so contention on the compare-and-set is only between processes.
   */
  record(name: string, ok: boolean, now = Date.now()): Promise<BreakerTransition> {
    const previous = this.queues.get(name) ?? Promise.resolve();
    const recorded = previous.catch(() => undefined).then(() => this.recordNow(name, ok, now));
    const tail = recorded.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return recorded;
  }

  private async recordNow(name: string, ok: boolean, now: number): Promise<BreakerTransition> {
    for (let attempt = 0; ; attempt++) {
      const { raw, snapshot } = await this.read(name);
      const next = ok ? recordSuccess(snapshot, this.policy, now) : recordFailure(snapshot, this.policy, now);
      const transition = {
        before: breakerState(snapshot, this.policy, now),
        after: breakerState(next, this.policy, now),
        snapshot: next,
      };
      if (next === snapshot) return transition;
      const set = await (this.redis as unknown as CompareAndSet).compareAndSet(
        this.keyPrefix + name,
        raw,
        JSON.stringify(next),
        TTL_SECONDS,
      );
      if (set === 1) return transition;
      if (attempt >= 20) throw new Error(`Breaker ${name}: too much contention to record an outcome`);
      // Another process wrote first: read again after a short, random pause so the writers spread out.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * (attempt + 1)));
    }
  }
}
