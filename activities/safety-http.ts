// The safety screen as a remote service (seed 001's "Safety API"): `HttpPromptScreen` asks a safety service
// (workers/safety-service.ts, or any service speaking the same contract) over HTTP, and throws when the service
// cannot answer, so the workflow parks the request in pending_safety and retries it until the service is back
// (seed 001, "Safety API unavailable"). A circuit breaker (seed 001: "circuit breaker opens") stops calling a service
// that keeps failing: while it is open a screen fails at once instead of holding an activity slot for the timeout, and
// a recovering service is not met by every parked request at once.
//
// The contract: POST <url>/v1/screen with {"prompt": "..."}; 200 {"allowed": bool, "categories": [string], "screen":
// string}. A refused prompt is a 200 with allowed=false; any other answer, a timeout or no connection is "down".
import { z } from 'zod';
import {
  CLOSED_BREAKER,
  breakerAllows,
  breakerRetryAfterMs,
  breakerState,
  recordFailure,
  recordSuccess,
  type BreakerPolicy,
  type BreakerSnapshot,
  type BreakerState,
} from '../core/circuit-breaker';
import type { Logger } from '../runtime/logger';
import { parse, type OptionTable } from '../runtime/options';
import { RulesPromptScreen, type PromptScreen, type ScreenResult } from './safety';

/** The safety screen a control worker uses. */
export interface SafetyScreenOptions {
  /** Base URL of the safety service; empty uses the in-process `rules-v1` screen. @default '' */
  readonly safetyUrl: string;
  /** How long one call may take before the service counts as down, ms. @default 2000 */
  readonly safetyTimeoutMs: number;
}

function parseSafetyUrl(raw: string, env: string): string {
  if (raw.trim() === '') return '';
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new TypeError(`${env}=${JSON.stringify(raw)}: expected an http:// or https:// URL, or empty`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TypeError(`${env}=${JSON.stringify(raw)}: expected an http:// or https:// URL, or empty`);
  return url.toString().replace(/\/+$/, '');
}

export const SAFETY_SCREEN_OPTIONS: OptionTable<SafetyScreenOptions> = {
  safetyUrl: {
    env: 'ATELIER_SAFETY_URL',
    doc: 'Base URL of the safety service (workers/safety-service.ts), e.g. http://127.0.0.1:8090; empty = the in-process rules-v1 screen',
    default: '',
    parse: parseSafetyUrl,
  },
  safetyTimeoutMs: {
    // Below the safety activity's 10 s start-to-close timeout, so a hung service fails the call, not the attempt.
    env: 'ATELIER_SAFETY_TIMEOUT_MS',
    doc: 'How long one call to the safety service may take before the screen counts as down, ms',
    default: 2_000,
    parse: parse.int(100, 9_000),
  },
};

/**
 * The safety service's breaker. Seed 001 gives the Safety API no numbers, so these follow its per-model breaker's
 * shape with a shorter open time: parked requests retry with backoff anyway, and every second open after the
 * service is back adds to their wait.
 */
export const SAFETY_BREAKER: BreakerPolicy = { failureThreshold: 5, successThreshold: 2, openMs: 5_000 };

const SCREEN_ANSWER = z.object({ allowed: z.boolean(), categories: z.array(z.string()) });

/** The screen cannot answer now: the request waits in pending_safety and is screened again later. */
export class SafetyServiceUnavailableError extends Error {
  override readonly name = 'SafetyServiceUnavailableError';
}

export interface HttpPromptScreenOptions {
  /** Base URL of the safety service, e.g. `http://127.0.0.1:8090`. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly breaker?: BreakerPolicy;
  /** Breaker transitions are logged here. */
  readonly log?: Pick<Logger, 'warn' | 'info'>;
  /** The clock, for tests. @default Date.now */
  readonly now?: () => number;
}

export class HttpPromptScreen implements PromptScreen {
  readonly name = 'safety-service';
  private readonly endpoint: string;
  private readonly policy: BreakerPolicy;
  private readonly now: () => number;
  private snapshot: BreakerSnapshot = CLOSED_BREAKER;

  constructor(private readonly options: HttpPromptScreenOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, '')}/v1/screen`;
    this.policy = options.breaker ?? SAFETY_BREAKER;
    this.now = options.now ?? Date.now;
  }

  /** The breaker's state now: CLOSED, OPEN (calls fail at once) or HALF_OPEN (calls try the service again). */
  get breaker(): BreakerState {
    return breakerState(this.snapshot, this.policy, this.now());
  }

  async screen(prompt: string): Promise<ScreenResult> {
    if (!breakerAllows(this.snapshot, this.policy, this.now())) {
      const retryAfterMs = breakerRetryAfterMs(this.snapshot, this.policy, this.now());
      throw new SafetyServiceUnavailableError(
        `The safety service's circuit breaker is open (${this.endpoint}); it is tried again in ${retryAfterMs} ms`,
      );
    }
    let answer: ScreenResult;
    try {
      answer = await this.call(prompt);
    } catch (err) {
      this.record(recordFailure(this.snapshot, this.policy, this.now()));
      throw err;
    }
    this.record(recordSuccess(this.snapshot, this.policy, this.now()));
    return answer;
  }

  private async call(prompt: string): Promise<ScreenResult> {
    const unavailable = (why: string, cause?: unknown): SafetyServiceUnavailableError =>
      new SafetyServiceUnavailableError(`The safety service at ${this.endpoint} ${why}`, { cause });
    let res: Response;
    try {
      res = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw unavailable(timedOut ? `did not answer within ${this.options.timeoutMs} ms` : 'is unreachable', err);
    }
    const text = await res.text().catch((err: unknown) => {
      throw unavailable('broke off its answer', err);
    });
    if (res.status !== 200) throw unavailable(`answered HTTP ${res.status}: ${text.slice(0, 200)}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw unavailable('answered with a body that is not JSON', err);
    }
    const parsed = SCREEN_ANSWER.safeParse(body);
    if (!parsed.success) throw unavailable(`answered without a verdict: ${parsed.error.message}`);
    return { allowed: parsed.data.allowed, categories: parsed.data.categories };
  }

  private record(next: BreakerSnapshot): void {
    const before = this.snapshot.state;
    this.snapshot = next;
    if (next.state === before) return;
    const fields = { breaker: 'safety-service', url: this.options.url, from: before, to: next.state };
    if (next.state === 'OPEN') this.options.log?.warn(fields, 'safety service circuit breaker opened');
    else this.options.log?.info(fields, `safety service circuit breaker ${next.state.toLowerCase()}`);
  }
}

/** The screen a control worker uses: the safety service when `safetyUrl` names one, else in-process `rules-v1`. */
export function createPromptScreen(options: SafetyScreenOptions, log?: Pick<Logger, 'warn' | 'info'>): PromptScreen {
  if (options.safetyUrl === '') return new RulesPromptScreen();
  return new HttpPromptScreen({ url: options.safetyUrl, timeoutMs: options.safetyTimeoutMs, log });
}
