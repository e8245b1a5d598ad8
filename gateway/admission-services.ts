// The gateway's admission collaborators, built from its options over one Redis connection: the plan of static keys,
// the breakers, the in-flight registry, the rate limiters (new requests by plan, cancels by option) and what a cancel
// is checked against. server.ts hands them to every connection.
import type { Redis } from 'ioredis';
import {
  CONTROL_QUEUE_WAIT_BOUND_MS,
  capacityVerdict,
  type CapacityVerdict,
  type QueueSnapshot,
} from '../core/capacity';
import { controlTaskQueue, gpuTaskQueue } from '../core/gpu';
import type { Plan } from '../core/plans';
import type { GenerationRequest } from '../core/request';
import { routeToGpu } from '../core/routing';
import { CapacityStore } from '../runtime/capacity-store';
import { DEFAULT_PLAN } from '../core/plans';
import type { RedisEventLog } from '../runtime/event-log';
import { GlobalFailureRate } from '../runtime/global-breaker';
import { LiveRequests } from '../runtime/live-requests';
import type { Logger } from '../runtime/logger';
import { ModelBreakers } from '../runtime/model-breakers';
import { Admission } from './admission';
import { BreakerGate } from './breaker-gate';
import type { CancelChecks } from './connection';
import type { GatewayOptions } from './options';
import { PlanRateLimiter } from './rate-limit';

/** How long a reading of the deployment's drain rate is reused, ms. */
const DRAIN_CACHE_MS = 1_000;

export function staticKeyPlan(options: GatewayOptions): Plan {
  return {
    ...DEFAULT_PLAN,
    tiers: [...options.staticKeyTiers],
    ratePerMinute: options.rateLimitPerMinute,
    maxInFlight: options.maxInFlightPerUser,
  };
}

/**
 * The capacity verdict for a request: the region's control queue (workflow tasks), then the fleet it routes to (the
 * routing matrix's first choice), each from the region's latest sample, read at most once a second per queue.
 */
function capacityCheck(
  options: GatewayOptions,
  store: CapacityStore,
): (request: GenerationRequest) => Promise<CapacityVerdict | undefined> {
  const cache = new Map<string, { at: number; snapshot: Promise<QueueSnapshot | undefined> }>();
  const sample = (taskQueue: string): Promise<QueueSnapshot | undefined> => {
    const now = Date.now();
    let entry = cache.get(taskQueue);
    if (!entry || now - entry.at >= DRAIN_CACHE_MS) {
      entry = { at: now, snapshot: store.read(taskQueue) };
      cache.set(taskQueue, entry);
    }
    return entry.snapshot;
  };
  return async (request) => {
    // The control queue first: every request's workflow waits there before it reaches any GPU queue.
    const control = await sample(controlTaskQueue(options.region));
    const controlVerdict = control && capacityVerdict(control, request.tier, CONTROL_QUEUE_WAIT_BOUND_MS);
    if (controlVerdict?.shed) return controlVerdict;
    const gpu = await sample(gpuTaskQueue(options.region, routeToGpu(request).gpuType));
    return gpu ? capacityVerdict(gpu, request.tier) : undefined;
  };
}

export function admissionServices(
  options: GatewayOptions,
  redis: Redis,
  eventLog: RedisEventLog,
  log: Logger,
): { admission: Admission; cancels: CancelChecks; live: LiveRequests } {
  const prefix = options.redisPrefix;
  const globalRate = new GlobalFailureRate(redis, prefix);
  const breakers = new BreakerGate({ modelBreakers: new ModelBreakers(redis, prefix, log), globalRate, log });
  const live = new LiveRequests(redis, prefix);
  let drain: { at: number; perSecond: Promise<number | undefined> } | undefined;
  const admission = new Admission({
    rate: new PlanRateLimiter(redis, `${prefix}ratelimit:generate`),
    live,
    deploymentCap: options.maxInFlight,
    eventLog,
    breakers,
    capacity: capacityCheck(options, new CapacityStore(redis, prefix)),
    drainPerSecond: () => {
      const now = Date.now();
      if (!drain || now - drain.at >= DRAIN_CACHE_MS) {
        // Requests ended over the global breaker's 60 s window.
        const perSecond = globalRate.read(now).then(
          (r) => (r.total > 0 ? r.total / 60 : undefined),
          () => undefined,
        );
        drain = { at: now, perSecond };
      }
      return drain.perSecond;
    },
    log,
  });
  const cancelRate = new PlanRateLimiter(redis, `${prefix}ratelimit:cancel`);
  const cancels: CancelChecks = {
    consume: (userId) => cancelRate.consume(userId, options.cancelLimitPerMinute),
    async knows(userId, workflowId) {
      try {
        if (await live.isLive(userId, workflowId)) return true;
        return (await eventLog.newestSeq(workflowId)) !== undefined;
      } catch (err) {
        log.warn({ err, workflowId }, 'Could not check a cancel against live requests; asking Temporal');
        return true;
      }
    },
  };
  return { admission, cancels, live };
}
