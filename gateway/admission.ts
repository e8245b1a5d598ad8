// Admission of a `generate` before anything reaches the GPU queue, in this order (authentication and frame validation
// come before it, at the upgrade and in validateGenerate):
//   1. plan: the tier must be one the key's plan allows                        TIER_NOT_ALLOWED
//   2. re-attach: a request this user already submitted is followed again, free of every check below
//   3. rate: the plan's new requests per minute                                RATE_LIMITED + retryAfterMs
//   4. in flight: the plan's cap on the user's requests accepted and not ended IN_FLIGHT_LIMIT + retryAfterMs
//      and the deployment's cap on all of them (seed 003's 503)               OVERLOADED + retryAfterMs
//   5. breakers: global (relax shed) and per model                            RELAX_SHED, MODEL_CIRCUIT_OPEN
//   6. region: home, or the nearest healthy region serving the model         REGION_UNAVAILABLE + retryAfterMs
//      (gateway/region-monitor.ts); the request then runs there
//   7. capacity: the fleet's expected wait against the tier's bound, in the   QUEUE_FULL + retryAfterMs
//      request's region (relax shed first, never turbo before fast: core/capacity.ts)
// A check whose store cannot be read lets the request through (logged): refusing everything because Redis is slow
// would turn a degraded dependency into an outage. The in-flight slot taken in step 4 is given back if a later step
// refuses or the workflow cannot be started.
import type { CapacityVerdict } from '../core/capacity';
import type { Plan } from '../core/plans';
import type { RejectCode } from '../core/errors';
import { generationWorkflowId, type GenerationRequest } from '../core/request';
import type { RedisEventLog } from '../runtime/event-log';
import type { Logger } from '../runtime/logger';
import type { LiveRequests } from '../runtime/live-requests';
import type { BreakerGate } from './breaker-gate';
import type { Placement } from './region-monitor';
import type { PlanRateLimiter } from './rate-limit';

/** Bounds of a computed retryAfterMs: never "now", never more than a minute away. */
const RETRY_AFTER_MIN_MS = 500;
const RETRY_AFTER_MAX_MS = 60_000;

/** Where an admitted request runs: its region, and whether that is not its gateway's (the client is told). */
export interface RequestPlacement {
  readonly region: string;
  readonly degraded: boolean;
}

export type AdmissionDecision =
  | {
      readonly admitted: true;
      readonly reattach: boolean;
      readonly release: () => Promise<void>;
      /** Absent for a re-attach (its workflow runs where it was started). */
      readonly placement?: RequestPlacement;
    }
  | {
      readonly admitted: false;
      readonly code: RejectCode;
      readonly message: string;
      readonly retryAfterMs?: number;
      readonly details?: Record<string, string>;
    };

export interface AdmissionDeps {
  readonly rate: Pick<PlanRateLimiter, 'consume'>;
  readonly live: Pick<LiveRequests, 'admit' | 'release' | 'total'>;
  /** Requests accepted and not ended that the whole deployment holds at most. */
  readonly deploymentCap: number;
  readonly eventLog: Pick<RedisEventLog, 'newestSeq'>;
  readonly breakers: Pick<BreakerGate, 'breakerRefusal'>;
  /** Where a new request runs (gateway/region-monitor.ts); home when absent. */
  readonly placement?: (request: GenerationRequest) => Promise<Placement>;
  /** The capacity verdict for the fleet a request routes to; undefined when there is no recent sample. */
  readonly capacity?: (request: GenerationRequest) => Promise<CapacityVerdict | undefined>;
  /** Requests the deployment ends per second, lately (the global breaker's window); undefined when unknown. */
  readonly drainPerSecond: () => Promise<number | undefined>;
  readonly log: Logger;
}

const clampRetry = (ms: number): number => Math.round(Math.min(RETRY_AFTER_MAX_MS, Math.max(RETRY_AFTER_MIN_MS, ms)));

export class Admission {
  constructor(private readonly deps: AdmissionDeps) {}

  async admit(request: GenerationRequest, plan: Plan): Promise<AdmissionDecision> {
    if (!plan.tiers.includes(request.tier)) {
      return {
        admitted: false,
        code: 'TIER_NOT_ALLOWED',
        message: `This API key's plan does not include the ${request.tier} tier; it allows ${plan.tiers.join(', ')}`,
        details: { tier: `allowed: ${plan.tiers.join(', ')}` },
      };
    }
    const workflowId = generationWorkflowId(request.userId, request.requestId);
    if (await this.isReattach(workflowId)) return { admitted: true, reattach: true, release: () => Promise.resolve() };

    const rate = await this.deps.rate.consume(request.userId, plan.ratePerMinute).catch((err: unknown) => {
      this.deps.log.error({ err, userId: request.userId }, 'Rate limiter failed; allowing the request');
      return { allowed: true as const };
    });
    if (!rate.allowed) {
      const message = `Rate limit exceeded; retry in ${rate.retryAfterMs} ms`;
      return { admitted: false, code: 'RATE_LIMITED', message, retryAfterMs: rate.retryAfterMs };
    }

    const slot = await this.takeSlot(request, workflowId, plan);
    if (!slot.admitted) return slot;
    const breaker = await this.deps.breakers.breakerRefusal(request);
    const placement = breaker ? undefined : await this.place(request);
    const refusal =
      breaker ??
      (placement && !placement.ok
        ? { code: placement.code, message: placement.message, retryAfterMs: placement.retryAfterMs }
        : await this.capacityRefusal(placement?.ok ? { ...request, region: placement.region } : request));
    if (refusal || !slot.admitted) {
      await slot.release();
      return refusal ? { admitted: false, ...refusal } : slot;
    }
    const where = placement?.ok ? placement : { region: request.region, degraded: false };
    return { ...slot, placement: { region: where.region, degraded: where.degraded } };
  }

  private async place(request: GenerationRequest): Promise<Placement | undefined> {
    return this.deps.placement?.(request).catch((err: unknown) => {
      this.deps.log.warn({ err }, 'Region placement failed; keeping the request home');
      return undefined;
    });
  }

  private async capacityRefusal(
    request: GenerationRequest,
  ): Promise<{ code: RejectCode; message: string; retryAfterMs: number } | undefined> {
    const verdict = await this.deps.capacity?.(request).catch((err: unknown) => {
      this.deps.log.warn({ err }, 'Capacity unreadable; allowing the request');
      return undefined;
    });
    if (!verdict?.shed) return undefined;
    const { retryAfterMs } = verdict;
    const message = `The ${request.tier} tier's GPU queue is past its wait bound; retry in ${retryAfterMs} ms`;
    return { code: 'QUEUE_FULL', message, retryAfterMs };
  }

  private async isReattach(workflowId: string): Promise<boolean> {
    try {
      return (await this.deps.eventLog.newestSeq(workflowId)) !== undefined;
    } catch (err) {
      // Unknown: treat it as new, so it is charged and capped like one (a re-attach costs at most one budget unit).
      this.deps.log.warn({ err, workflowId }, 'Could not tell a re-attach from a new request');
      return false;
    }
  }

  /** Step 4: a place among the user's and the deployment's requests in flight. */
  private async takeSlot(request: GenerationRequest, workflowId: string, plan: Plan): Promise<AdmissionDecision> {
    const release = (): Promise<void> =>
      this.deps.live.release(workflowId).catch((err: unknown) => {
        this.deps.log.warn({ err, workflowId }, 'Could not release an in-flight slot');
      });
    let admission;
    try {
      admission = await this.deps.live.admit(request.userId, workflowId, {
        user: plan.maxInFlight,
        deployment: this.deps.deploymentCap,
      });
    } catch (err) {
      this.deps.log.error({ err, userId: request.userId }, 'In-flight caps unreadable; allowing the request');
      return { admitted: true, reattach: false, release };
    }
    if (admission.admitted) return { admitted: true, reattach: false, release };
    const drain = await this.deps.drainPerSecond().catch(() => undefined);
    if (admission.over === 'user') {
      // Little's law: a request stays about `live / drain` seconds; with `count` of them, one of the user's ends
      // about `count` times sooner than that.
      const live = await this.deps.live.total().catch(() => undefined);
      const stay = drain && live ? (live / drain) * 1000 : RETRY_AFTER_MAX_MS;
      const retryAfterMs = clampRetry(stay / Math.max(1, admission.count));
      const message = `${admission.count} of this user's requests are in flight, the plan's most; retry in ${retryAfterMs} ms`;
      return { admitted: false, code: 'IN_FLIGHT_LIMIT', message, retryAfterMs };
    }
    // The deployment is full: a place frees as soon as any request ends, about once every 1 / drain seconds.
    const retryAfterMs = clampRetry(drain ? 1000 / drain : RETRY_AFTER_MAX_MS);
    const message = `The service holds its most requests in flight (${admission.count}); retry in ${retryAfterMs} ms`;
    return { admitted: false, code: 'OVERLOADED', message, retryAfterMs };
  }
}
