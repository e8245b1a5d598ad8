// Seed 001's breakers at the gateway's door, checked for each new `generate` after its rate limit:
// - global (more than 10% of requests failing over 60 s): the relax tier is shed, RELAX_SHED with retryAfterMs, so
//   the failing system spends what it has on the interactive tiers; turbo and fast go on;
// - per model (open after 5 failures, 60 s): the model's new requests are refused, MODEL_CIRCUIT_OPEN with
//   retryAfterMs. No other model is substituted: a different model makes different images than the client asked for.
// A resubmission of a request already accepted never reaches these checks (gateway/admission.ts), and a breaker that
// cannot be read lets the request through: an unreadable breaker is no reason to refuse. Readings are cached for a second
// per model, so a burst costs Redis one read per model, not one per request.
import type { RejectCode } from '../core/errors';
import type { ModelName } from '../core/models';
import type { GenerationRequest } from '../core/request';
import type { Logger } from '../runtime/logger';
import type { ModelBreakers } from '../runtime/model-breakers';
import type { GlobalBreakerReading, GlobalFailureRate } from '../runtime/global-breaker';

/** How long a relax client is told to wait while the global breaker is open: about a quarter of its window. */
export const RELAX_SHED_RETRY_AFTER_MS = 15_000;
const CACHE_MS = 1_000;

export interface Refusal {
  readonly code: RejectCode;
  readonly message: string;
  readonly retryAfterMs: number;
}

export interface BreakerGateDeps {
  readonly modelBreakers: Pick<ModelBreakers, 'openFor'>;
  readonly globalRate: Pick<GlobalFailureRate, 'read'> | undefined;
  readonly log: Logger;
  readonly now?: () => number;
}

export class BreakerGate {
  private readonly models = new Map<ModelName, { at: number; openFor: Promise<number | undefined> }>();
  private global: { at: number; reading: Promise<GlobalBreakerReading | undefined> } | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: BreakerGateDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Why a new request must be refused now; undefined to let it through. (Re-attaches never get here: admission.ts.) */
  async breakerRefusal(request: GenerationRequest): Promise<Refusal | undefined> {
    if (request.tier === 'relax' && (await this.globalReading())?.open) {
      return {
        code: 'RELAX_SHED',
        message: `More than 10% of requests are failing; the relax tier is paused, retry in ${RELAX_SHED_RETRY_AFTER_MS} ms`,
        retryAfterMs: RELAX_SHED_RETRY_AFTER_MS,
      };
    }
    const retryAfterMs = await this.modelOpenFor(request.model);
    if (retryAfterMs === undefined) return undefined;
    return {
      code: 'MODEL_CIRCUIT_OPEN',
      message: `${request.model} is failing on the GPU fleets and is paused; retry in ${retryAfterMs} ms`,
      retryAfterMs,
    };
  }

  private modelOpenFor(model: ModelName): Promise<number | undefined> {
    const now = this.now();
    const cached = this.models.get(model);
    if (cached && now - cached.at < CACHE_MS) return cached.openFor;
    const openFor = this.deps.modelBreakers.openFor(model, now).catch((err: unknown) => {
      this.deps.log.warn({ err, model }, 'Could not read the model circuit breaker; allowing the request');
      return undefined;
    });
    this.models.set(model, { at: now, openFor });
    return openFor;
  }

  private globalReading(): Promise<GlobalBreakerReading | undefined> {
    const { globalRate } = this.deps;
    if (!globalRate) return Promise.resolve(undefined);
    const now = this.now();
    if (this.global && now - this.global.at < CACHE_MS) return this.global.reading;
    const reading = globalRate.read(now).catch((err: unknown) => {
      this.deps.log.warn({ err }, 'Could not read the global circuit breaker; allowing the request');
      return undefined;
    });
    this.global = { at: now, reading };
    return reading;
  }
}
