// The gateway's admission collaborators, built from its options over one Redis connection: the plan of static keys,
// the breakers, the in-flight registry, the rate limiters (new requests by plan, cancels by option) and what a cancel
// is checked against. server.ts hands them to every connection.
import type { RedisClient } from '../runtime/redis';
import { CONTROL_QUEUE_WAIT_BOUND_MS, capacityVerdict, type CapacityVerdict } from '../core/capacity';
import { controlTaskQueue, gpuTaskQueue, relaxTaskQueue } from '../core/gpu';
import type { Plan } from '../core/plans';
import type { GenerationRequest } from '../core/request';
import { routeToGpu } from '../core/routing';
import { CapacityStore } from '../runtime/capacity-store';
import type { RegionMonitor } from './region-monitor';
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
import { cachedFor } from './async';

/** How long a reading of the shared windows and queue samples is reused, ms. */
const CACHE_MS = 1_000;

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
function capacityCheck(store: CapacityStore): (request: GenerationRequest) => Promise<CapacityVerdict | undefined> {
  const sample = cachedFor(CACHE_MS, (taskQueue: string) => store.read(taskQueue));
  return async (request) => {
    // The control queue first: every request's workflow waits there before it reaches any GPU queue.
    const control = await sample(controlTaskQueue(request.region));
    const controlVerdict = control && capacityVerdict(control, request.tier, CONTROL_QUEUE_WAIT_BOUND_MS);
    if (controlVerdict?.shed) return controlVerdict;
    const { gpuType } = routeToGpu(request);
    const gpu = await sample(gpuTaskQueue(request.region, gpuType));
    const relaxLane = request.tier === 'relax' ? await sample(relaxTaskQueue(request.region, gpuType)) : undefined;
    return gpu ? capacityVerdict(gpu, request.tier, undefined, relaxLane) : undefined;
  };
}

export function admissionServices(
  options: GatewayOptions,
  redis: RedisClient,
  eventLog: RedisEventLog,
  log: Logger,
  regions?: Pick<RegionMonitor, 'place'>,
): { admission: Admission; cancels: CancelChecks; live: LiveRequests } {
  const prefix = options.redisPrefix;
  // One read of the global window a second serves both the relax shed and the drain rate.
  const rate = new GlobalFailureRate(redis, prefix);
  const readGlobal = cachedFor(CACHE_MS, () => rate.read());
  const globalRate = { read: () => readGlobal(undefined) };
  const breakers = new BreakerGate({ modelBreakers: new ModelBreakers(redis, prefix, log), globalRate, log });
  const live = new LiveRequests(redis, prefix);
  const admission = new Admission({
    rate: new PlanRateLimiter(redis, `${prefix}ratelimit:generate`),
    live,
    deploymentCap: options.maxInFlight,
    eventLog,
    breakers,
    ...(regions ? { placement: (request: GenerationRequest) => regions.place(request) } : {}),
    capacity: capacityCheck(new CapacityStore(redis, prefix)),
    // Requests ended over the global breaker's 60 s window.
    drainPerSecond: () =>
      globalRate.read().then(
        (r) => (r.total > 0 ? r.total / 60 : undefined),
        () => undefined,
      ),
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
