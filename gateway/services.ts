// The gateway's collaborators: what a caller may hand in (tests: a Temporal client, an object store, keys), and
// everything else built from the options over one Redis connection (event log and its subscriber, sessions,
// admission, the Temporal orchestrator). server.ts wires them into the HTTP server and the connection registry.
import type { Client, Connection } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { RedisEventLog, type EventSubscriber } from '../runtime/event-log';
import type { Logger } from '../runtime/logger';
import type { ObjectStore } from '../runtime/object-store';
import { openRegionStores, ReadThroughRegionStore } from '../runtime/region-stores';
import { PrefixAgreement } from '../runtime/prefix-agreement';
import { createRedis, type RedisClient } from '../runtime/redis';
import type { Admission } from './admission';
import { admissionServices, staticKeyPlan } from './admission-services';
import { RedisApiKeyStore } from '../runtime/api-key-store';
import { ChainedApiKeyStore, StaticApiKeyStore, type ApiKeyStore } from './auth';
import { withJwtAuth } from './jwt-auth';
import type { CancelChecks } from './connection';
import { RequestExpectations } from './expectations';
import { RegionMonitor } from './region-monitor';
import { loadRegionCatalogue } from '../runtime/region-catalogue';
import { GenerationOrchestrator } from './orchestrator';
import type { GatewayOptions } from './options';
import { RedisSessionStore } from './session-store';

/** Collaborators a caller may hand in instead of the ones built from options. Handed-in ones are not closed. */
export interface GatewayDeps {
  /**
   * Temporal client (tests pass TestWorkflowEnvironment's).
   * @default a lazily connecting client for options.temporalAddress
   */
  readonly temporalClient?: Client;
  /** @default FsObjectStore(options.storageDir) */
  readonly objectStore?: ObjectStore;
  /**
   * @default the static keys of options.apiKeys, then the keys created through the admin API. Either way, JWT bearer
   * tokens go to the JWT verifier instead while options.jwtSecrets is set.
   */
  readonly apiKeys?: ApiKeyStore;
  /** @default createLogger('gateway') */
  readonly logger?: Logger;
  /**
   * Announce this gateway under its Redis prefix and check that the control workers use the same one; a mismatch
   * is logged as an error and makes /readyz fail, since no request event could reach clients. In-process tests
   * whose workers do not announce themselves turn it off. @default true
   */
  readonly checkRedisPrefix?: boolean;
  /**
   * The process's Prometheus registry, served at /metrics. Each gateway made without one gets its own, so gateways
   * sharing a test process keep their figures apart. @default a new registry labelled process="gateway"
   */
  readonly metricsRegistry?: Registry;
}

/** The gateway's collaborators, each handed in through deps or built from options. */
export interface GatewayServices {
  readonly redis: RedisClient;
  readonly eventLog: RedisEventLog;
  readonly subscriber: EventSubscriber;
  readonly sessions: RedisSessionStore;
  readonly admission: Admission;
  readonly cancels: CancelChecks;
  /** Every region's health, and where a new request runs (failover between regions). */
  readonly regions: RegionMonitor;
  /** Estimates in `accepted`, queue positions and queue updates. */
  readonly expectations: RequestExpectations;
  readonly objectStore: ObjectStore;
  readonly apiKeys: ApiKeyStore;
  /** Keys created through the admin API, with their plans. */
  readonly keys: RedisApiKeyStore;
  readonly orchestrator: GenerationOrchestrator;
  /** Set when the Temporal client is our own, so shutdown closes it. */
  readonly ownTemporalConnection: Connection | null;
  readonly prefixAgreement: PrefixAgreement | undefined;
}

/** `onPeerRead`: told of each image served from another region's store, before it was replicated here. */
export function createServices(
  options: GatewayOptions,
  deps: GatewayDeps,
  log: Logger,
  onPeerRead?: (region: string) => void,
): GatewayServices {
  const redis: RedisClient = createRedis(options.redisUrl, 'gateway', options.redisCommandTimeoutMs);
  const eventLog = new RedisEventLog(redis, { prefix: options.redisPrefix });
  const subscriber = eventLog.createSubscriber(
    createRedis(options.redisUrl, 'gateway-sub', options.redisCommandTimeoutMs),
  );
  // Pongs refresh a session every heartbeat; it expires only after about three without one.
  const sessionTtlSeconds = Math.ceil((3 * options.heartbeatIntervalMs) / 1000);
  const sessions = new RedisSessionStore(redis, options.redisPrefix, sessionTtlSeconds);
  // This region's store, then the peers' (an image from another region until it is replicated here).
  const objectStore = deps.objectStore ?? new ReadThroughRegionStore(openRegionStores(options), onPeerRead);
  const keys = new RedisApiKeyStore(redis, options.redisPrefix);
  const apiKeys = withJwtAuth(
    deps.apiKeys ?? new ChainedApiKeyStore([StaticApiKeyStore.parse(options.apiKeys, staticKeyPlan(options)), keys]),
    options,
    log,
  );
  const regions = new RegionMonitor({
    redis,
    prefix: options.redisPrefix,
    catalogue: loadRegionCatalogue(),
    home: options.region,
    gatewayId: options.gatewayId,
    log,
  });
  const { admission, cancels } = admissionServices(options, redis, eventLog, log, regions);
  const temporal = temporalClientFor(options, deps);
  const orchestrator = new GenerationOrchestrator(temporal.client, { retryWindowMs: options.startRetryMs, log });
  return {
    redis,
    eventLog,
    subscriber,
    sessions,
    admission,
    cancels,
    regions,
    expectations: new RequestExpectations(redis, options.redisPrefix, {
      region: options.region,
      queueUpdateIntervalMs: options.queueUpdateIntervalMs,
      log,
    }),
    objectStore,
    apiKeys,
    keys,
    orchestrator,
    ownTemporalConnection: temporal.ownConnection,
    prefixAgreement:
      deps.checkRedisPrefix === false
        ? undefined
        : new PrefixAgreement({ redis, prefix: options.redisPrefix, role: 'gateway', log }),
  };
}

/** The handed-in Temporal client, or one of our own (whose connection shutdown closes). */
function temporalClientFor(
  options: GatewayOptions,
  deps: GatewayDeps,
): { client: Client; ownConnection: Connection | null } {
  if (deps.temporalClient) return { client: deps.temporalClient, ownConnection: null };
  const lazy = GenerationOrchestrator.connectLazily(options.temporalAddress, options.temporalNamespace);
  return { client: lazy.client, ownConnection: lazy.connection };
}
