// The per-model circuit breakers of a deployment (seed 001 `per_model`: 5 failures, 3 successes, 60 s open), shared
// by every process through Redis: GPU workers report how each run of a model ended, and gateways refuse new requests
// for a model whose breaker is open. Transitions are logged where they happen.
import type { Logger } from './logger';
import type { RedisClient } from './redis';
import { MODEL_BREAKER, breakerRetryAfterMs, type BreakerState } from '../core/circuit-breaker';
import type { ModelName } from '../core/models';
import { RedisBreakerStore } from './breaker-store';

export class ModelBreakers {
  private readonly store: RedisBreakerStore;

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.store = new RedisBreakerStore(redis, `${prefix}breaker:model:`, MODEL_BREAKER);
  }

  /** Records a run's outcome; never throws (a breaker that cannot be updated must not fail the work). */
  report(model: ModelName, ok: boolean): void {
    this.store.record(model, ok).then(
      ({ before, after }) => {
        if (before === after) return;
        const level = after === 'OPEN' ? 'error' : 'warn';
        this.log[level]({ model, from: before, to: after }, `model circuit breaker ${before} -> ${after}`);
      },
      (err: unknown) => this.log.warn({ err, model }, 'Could not record an outcome in the model circuit breaker'),
    );
  }

  /** The model's breaker state now (HALF_OPEN once an open breaker's time is up). */
  async state(model: ModelName, now = Date.now()): Promise<BreakerState> {
    return (await this.store.reading(model, now)).state;
  }

  /** When the model's breaker is open: how long until it lets test traffic through; undefined when it allows work. */
  async openFor(model: ModelName, now = Date.now()): Promise<number | undefined> {
    const { state, snapshot } = await this.store.reading(model, now);
    return state === 'OPEN' ? Math.max(1, breakerRetryAfterMs(snapshot, MODEL_BREAKER, now)) : undefined;
  }
}
