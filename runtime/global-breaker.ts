// Seed 001's global circuit breaker, shared through Redis: every request's outcome, counted once as its terminal
// event is first written, in one-second buckets of one hash; the breaker is open when more than 10% of the requests
// that ended in the last 60 s failed (with at least 20 of them: core/circuit-breaker.ts). Gateways read it to shed
// the relax tier while it is open; the control worker exports it for the alert.
//
// Only the service's own failures count: a refused prompt (UNSAFE_PROMPT) or a cancellation is the service working.
//
// Key, under the deployment prefix: `global-outcomes`, a hash of `t:<second>` (requests ended) and `f:<second>`
// (failed), pruned as it is read.
import type { RedisClient } from './redis';
import { GLOBAL_BREAKER, failureRateOpen, type OutcomeCounts } from '../core/circuit-breaker';
import type { FailureCode } from '../core/errors';
import { isTerminalEvent, type RequestEvent } from '../core/events';
import type { RequestEventAppender, RequestEventPublisher } from './event-log';
import type { LiveRequests } from './live-requests';

/** Failure codes that are the service failing, not the request being refused or withdrawn. */
export const SERVICE_FAILURE_CODES: ReadonlySet<FailureCode> = new Set([
  'MODEL_UNAVAILABLE',
  'INFERENCE_FAILED',
  'STORAGE_FAILED',
  'TIMED_OUT',
  'NO_CAPACITY',
  'INTERNAL',
]);

export interface GlobalBreakerReading extends OutcomeCounts {
  readonly open: boolean;
}

export class GlobalFailureRate {
  private readonly key: string;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.key = `${prefix}global-outcomes`;
  }

  async record(failed: boolean, now = Date.now()): Promise<void> {
    const second = Math.floor(now / 1000);
    const multi = this.redis.multi().hincrby(this.key, `t:${second}`, 1);
    if (failed) multi.hincrby(this.key, `f:${second}`, 1);
    // The hash outlives no quiet spell by much: two windows after the last outcome, it is gone.
    await multi.pexpire(this.key, 2 * GLOBAL_BREAKER.windowMs).exec();
  }

  /** The counts of the window ending at `now`, and whether the breaker is open. */
  async read(now = Date.now()): Promise<GlobalBreakerReading> {
    const fields = await this.redis.hgetall(this.key);
    const oldest = Math.floor((now - GLOBAL_BREAKER.windowMs) / 1000);
    let total = 0;
    let failed = 0;
    const stale: string[] = [];
    for (const [field, value] of Object.entries(fields)) {
      const second = Number(field.slice(2));
      if (second <= oldest) stale.push(field);
      else if (field.startsWith('t:')) total += Number(value);
      else failed += Number(value);
    }
    if (stale.length > 0) await this.redis.hdel(this.key, ...stale);
    const counts = { total, failed };
    return { ...counts, open: failureRateOpen(counts) };
  }
}

/**
 * The control worker's event log, counting each request's outcome into the global breaker when its terminal event is
 * first written (a retried activity or a replayed workflow writing it again is deduplicated, and not counted again),
 * and taking the request out of the live-request sets at every terminal write (idempotent, so a release lost to a
 * Redis blip is made good by the next attempt). Neither ever fails the publish: a lost count is a rounding error in a
 * 60 s window, a lost terminal is not.
 */
export class OutcomeCountingEventLog implements RequestEventPublisher {
  constructor(
    private readonly inner: RequestEventAppender,
    private readonly rate: Pick<GlobalFailureRate, 'record'>,
    private readonly onError: (err: unknown) => void,
    private readonly live?: Pick<LiveRequests, 'release'>,
  ) {}

  async publish(logId: string, event: RequestEvent, dedupeKey?: string): Promise<number> {
    const { seq, published } = await this.inner.append(logId, event, dedupeKey);
    if (isTerminalEvent(event)) {
      this.live?.release(logId).catch(this.onError);
      if (published) {
        const failed = event.type === 'failed' && SERVICE_FAILURE_CODES.has(event.code);
        this.rate.record(failed).catch(this.onError);
      }
    }
    return seq;
  }
}
