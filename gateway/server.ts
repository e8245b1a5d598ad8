// The gateway process in one object: it wires Redis, the event log, sessions, rate limits, the object store, API
// keys and Temporal to an HTTP server (routes in http.ts) whose upgrades admit WebSocket clients (upgrade.ts) into
// the registry of open connections (connection-registry.ts), and runs the ordered shutdown. `createGateway(options,
// deps)` is what main.ts runs and what tests start in-process against real Redis and a real Temporal.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client, Connection } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { WebSocketServer } from 'ws';
import { PROTOCOL_PATH } from '../core/protocol';
import { RedisEventLog, type EventSubscriber } from '../runtime/event-log';
import { createLogger, type Logger } from '../runtime/logger';
import { FsObjectStore, type ObjectStore } from '../runtime/object-store';
import { withInjectedLatency } from '../runtime/delayed-object-store';
import { ModelBreakers } from '../runtime/model-breakers';
import { PrefixAgreement } from '../runtime/prefix-agreement';
import { createRedis, type Redis } from '../runtime/redis';
import { StaticApiKeyStore, type ApiKeyStore } from './auth';
import { withTimeout } from './async';
import { ConnectionRegistry } from './connection-registry';
import { createHttpHandler, type ReadinessReport } from './http';
import { WorkerControlStore } from '../runtime/worker-control';
import { GlobalFailureRate } from '../runtime/global-breaker';
import { BreakerGate } from './breaker-gate';
import { GatewayMetrics } from './metrics';
import { GenerationOrchestrator } from './orchestrator';
import { urlHost, type GatewayOptions } from './options';
import { RedisRequestRateLimiter, type RequestRateLimiter } from './rate-limit';
import { RedisSessionStore } from './session-store';
import { createUpgradeHandler } from './upgrade';

/** Collaborators a caller may hand in instead of the ones built from options. Handed-in ones are not closed. */
export interface GatewayDeps {
  /**
   * Temporal client (tests pass TestWorkflowEnvironment's).
   * @default a lazily connecting client for options.temporalAddress
   */
  readonly temporalClient?: Client;
  /** @default FsObjectStore(options.storageDir) */
  readonly objectStore?: ObjectStore;
  /** @default StaticApiKeyStore.parse(options.apiKeys) */
  readonly apiKeys?: ApiKeyStore;
  /** @default a Redis-backed limiter with options.rateLimitPerMinute */
  readonly rateLimiter?: RequestRateLimiter;
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

export interface GatewayAddress {
  readonly host: string;
  readonly port: number;
  /** `ws://host:port/v1/ws` */
  readonly wsUrl: string;
  /** `http://host:port` */
  readonly httpUrl: string;
  /** Base of image URLs in `completed` frames. */
  readonly publicBaseUrl: string;
}

export interface Gateway {
  /** Binds the port; resolves once connections are accepted. */
  listen(): Promise<GatewayAddress>;
  /** Ordered shutdown; safe to call more than once. */
  close(): Promise<void>;
  /** Set once listening. */
  readonly address: GatewayAddress | null;
  /** Open client connections, for tests and metrics. */
  readonly connectionCount: number;
}

const SHUTDOWN_REASON = 'server shutting down, reconnect';

export function createGateway(options: GatewayOptions, deps: GatewayDeps = {}): Gateway {
  const log = deps.logger ?? createLogger('gateway', { gatewayId: options.gatewayId });
  const services = createServices(options, deps, log);
  const metrics = deps.metricsRegistry
    ? new GatewayMetrics(deps.metricsRegistry)
    : GatewayMetrics.forProcess(options.region);
  // Aborted when shutdown stops waiting for workflow starts: their retries end.
  const startRetries = new AbortController();
  let address: GatewayAddress | null = null;
  let closing: Promise<void> | null = null;

  const registry = new ConnectionRegistry({
    gatewayId: options.gatewayId,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    sessions: services.sessions,
    log,
    context: {
      region: options.region,
      publicBaseUrl: () => address?.publicBaseUrl ?? options.publicBaseUrl,
      maxBufferedBytes: options.maxBufferedBytes,
      orchestrator: services.orchestrator,
      eventLog: services.eventLog,
      subscriber: services.subscriber,
      rateLimiter: services.rateLimiter,
      breakers: services.breakers,
      shutdownSignal: startRetries.signal,
      metrics,
    },
  });
  metrics.countConnectionsWith(() => registry.count);
  const readiness = readinessProbe(services, () => closing === null);
  const httpServer: Server = createServer(
    createHttpHandler({
      objectStore: services.objectStore,
      readiness,
      metrics: metrics.endpoint,
      log,
      admin: {
        token: options.adminToken,
        store: new WorkerControlStore(services.redis, options.redisPrefix),
        region: options.region,
        log,
      },
    }),
  );
  const wss = new WebSocketServer({
    noServer: true,
    // ws closes the socket (1009) above this; frames between MAX_FRAME_BYTES and this get FRAME_TOO_LARGE.
    maxPayload: options.hardMaxFrameBytes,
    perMessageDeflate: false,
  });
  httpServer.on(
    'upgrade',
    createUpgradeHandler({
      wss,
      apiKeys: services.apiKeys,
      isClosing: () => closing !== null,
      shutdownReason: SHUTDOWN_REASON,
      onAdmitted: (ws, userId) => registry.add(ws, userId),
      log,
    }),
  );

  const parts: GatewayParts = { options, log, services, startRetries, registry, httpServer, wss };
  return {
    async listen(): Promise<GatewayAddress> {
      address = await listen(parts);
      return address;
    },
    close: () => (closing ??= shutDown(parts)),
    get address() {
      return address;
    },
    get connectionCount() {
      return registry.count;
    },
  };
}

/** The gateway's collaborators, each handed in through deps or built from options. */
interface GatewayServices {
  readonly redis: Redis;
  readonly eventLog: RedisEventLog;
  readonly subscriber: EventSubscriber;
  readonly sessions: RedisSessionStore;
  readonly rateLimiter: RequestRateLimiter;
  readonly breakers: BreakerGate;
  readonly objectStore: ObjectStore;
  readonly apiKeys: ApiKeyStore;
  readonly orchestrator: GenerationOrchestrator;
  /** Set when the Temporal client is our own, so shutdown closes it. */
  readonly ownTemporalConnection: Connection | null;
  readonly prefixAgreement: PrefixAgreement | undefined;
}

function createServices(options: GatewayOptions, deps: GatewayDeps, log: Logger): GatewayServices {
  const redis: Redis = createRedis(options.redisUrl, 'gateway', options.redisCommandTimeoutMs);
  const eventLog = new RedisEventLog(redis, { prefix: options.redisPrefix });
  const subscriber = eventLog.createSubscriber(
    createRedis(options.redisUrl, 'gateway-sub', options.redisCommandTimeoutMs),
  );
  // Pongs refresh a session every heartbeat; it expires only after about three without one.
  const sessionTtlSeconds = Math.ceil((3 * options.heartbeatIntervalMs) / 1000);
  const sessions = new RedisSessionStore(redis, options.redisPrefix, sessionTtlSeconds);
  const rateLimiter =
    deps.rateLimiter ?? new RedisRequestRateLimiter(redis, options.redisPrefix, options.rateLimitPerMinute);
  const objectStore =
    deps.objectStore ?? withInjectedLatency(new FsObjectStore(options.storageDir), options.chaosStorageLatencyMs);
  const apiKeys = deps.apiKeys ?? StaticApiKeyStore.parse(options.apiKeys);
  const temporal = temporalClientFor(options, deps);
  const orchestrator = new GenerationOrchestrator(temporal.client, { retryWindowMs: options.startRetryMs, log });
  return {
    redis,
    eventLog,
    subscriber,
    sessions,
    rateLimiter,
    breakers: new BreakerGate({
      modelBreakers: new ModelBreakers(redis, options.redisPrefix, log),
      globalRate: new GlobalFailureRate(redis, options.redisPrefix),
      eventLog,
      log,
    }),
    objectStore,
    apiKeys,
    orchestrator,
    ownTemporalConnection: temporal.ownConnection,
    prefixAgreement:
      deps.checkRedisPrefix === false
        ? undefined
        : new PrefixAgreement({ redis, prefix: options.redisPrefix, role: 'gateway', log }),
  };
}

/** What listening and shutdown act on. */
interface GatewayParts {
  readonly options: GatewayOptions;
  readonly log: Logger;
  readonly services: GatewayServices;
  readonly startRetries: AbortController;
  readonly registry: ConnectionRegistry;
  readonly httpServer: Server;
  readonly wss: WebSocketServer;
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

function readinessProbe(
  { redis, orchestrator, prefixAgreement }: GatewayServices,
  isAccepting: () => boolean,
): () => Promise<ReadinessReport> {
  return async () => {
    const [redisCheck, temporalCheck] = await Promise.all([
      withTimeout(redis.ping(), 1500).then(
        () => ({ ok: true }),
        (err: unknown) => ({ ok: false, error: (err as Error).message }),
      ),
      orchestrator.check(2000),
    ]);
    const prefix = prefixAgreement?.status;
    const prefixCheck = prefix && {
      ok: prefix.state !== 'mismatch',
      prefix: prefix.prefix,
      state: prefix.state,
      ...(prefix.state === 'mismatch' ? { error: prefix.problem } : {}),
    };
    const ready = redisCheck.ok && temporalCheck.ok && (prefixCheck?.ok ?? true) && isAccepting();
    return {
      ready,
      checks: { redis: redisCheck, temporal: temporalCheck, ...(prefixCheck ? { redisPrefix: prefixCheck } : {}) },
    };
  };
}

async function listen(parts: GatewayParts): Promise<GatewayAddress> {
  const { options, log, httpServer } = parts;
  const { redis, prefixAgreement } = parts.services;
  // Rate limits fall back to a per-instance counter while Redis is not ready; waiting for it here keeps the
  // first requests on the shared counter. Without Redis the gateway still starts (and reports unready).
  if (!(await redisReady(redis, 5000))) log.warn({ redisUrl: options.redisUrl }, 'Redis is not ready; starting anyway');
  prefixAgreement?.start();
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const bound = httpServer.address() as AddressInfo;
  const httpUrl = `http://${urlHost(options.host)}:${bound.port}`;
  const address: GatewayAddress = {
    host: options.host,
    port: bound.port,
    httpUrl,
    wsUrl: `ws://${urlHost(options.host)}:${bound.port}${PROTOCOL_PATH}`,
    publicBaseUrl: options.publicBaseUrl || httpUrl,
  };
  log.info({ ...address }, 'Gateway listening');
  return address;
}

async function shutDown(parts: GatewayParts): Promise<void> {
  const { options, registry, httpServer } = parts;
  const { redis, subscriber, ownTemporalConnection } = parts.services;
  registry.stopHeartbeat();
  // 1. Stop accepting: no new TCP connections; upgrades already in progress are refused with 503.
  const serverClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
  httpServer.closeIdleConnections();
  // 2. Tell every client to reconnect elsewhere; their requests keep running and they re-attach by requestId.
  registry.tellClientsToReconnect(SHUTDOWN_REASON);
  // 3. Let workflow starts in flight finish (and record `accepted`), up to the grace period.
  const graceEnd = Date.now() + options.shutdownGraceMs;
  await registry.drainInFlight(options.shutdownGraceMs);
  parts.startRetries.abort();
  await registry.drainInFlight(1000);
  await registry.closeSockets(Math.max(500, graceEnd - Date.now()));
  httpServer.closeAllConnections();
  await serverClosed;
  parts.wss.close();
  // 4. Then the connections to Redis and Temporal.
  parts.services.prefixAgreement?.stop();
  await subscriber.close();
  await redis.quit().catch(() => redis.disconnect());
  if (ownTemporalConnection) await ownTemporalConnection.close().catch(() => undefined);
  parts.log.info('Gateway stopped');
}

function redisReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    function onReady(): void {
      clearTimeout(timer);
      resolve(true);
    }
    redis.once('ready', onReady);
  });
}
