// The gateway process in one object: it wires Redis, the event log, sessions, rate limits, the object store, API
// keys and Temporal to an HTTP server (routes in http.ts) whose upgrades admit WebSocket clients (upgrade.ts) into
// the registry of open connections (connection-registry.ts), and runs the ordered shutdown. `createGateway(options,
// deps)` is what main.ts runs and what tests start in-process against real Redis and a real Temporal.
import { createServer, type Server } from 'node:http';
import { createServices, type GatewayDeps, type GatewayServices } from './services';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { PROTOCOL_PATH } from '../core/protocol';
import { createLogger, type Logger } from '../runtime/logger';
import type { RedisClient } from '../runtime/redis';
import { withTimeout } from './async';
import { ConnectionRegistry } from './connection-registry';
import { createHttpHandler, type ReadinessReport } from './http';
import { createImageAccess } from './image-urls';
import { WorkerControlStore } from '../runtime/worker-control';
import { GatewayMetrics } from './metrics';
import { urlHost, type GatewayOptions } from './options';
import { createUpgradeHandler } from './upgrade';

export type { GatewayDeps } from './services';

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
  const metrics = deps.metricsRegistry
    ? new GatewayMetrics(deps.metricsRegistry)
    : GatewayMetrics.forProcess(options.region);
  const services = createServices(options, deps, log, (region) => metrics.imageReadFromPeer(region));
  // Aborted when shutdown stops waiting for workflow starts: their retries end.
  const startRetries = new AbortController();
  let address: GatewayAddress | null = null;
  let closing: Promise<void> | null = null;
  const images = createImageAccess(options);

  const registry = new ConnectionRegistry({
    gatewayId: options.gatewayId,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    sessions: services.sessions,
    log,
    context: {
      region: options.region,
      imageUrl: (key) => images.url(address?.publicBaseUrl ?? options.publicBaseUrl, key),
      maxBufferedBytes: options.maxBufferedBytes,
      orchestrator: services.orchestrator,
      eventLog: services.eventLog,
      subscriber: services.subscriber,
      admission: services.admission,
      cancels: services.cancels,
      expectations: services.expectations,
      shutdownSignal: startRetries.signal,
      metrics,
    },
  });
  metrics.countConnectionsWith(() => registry.count);
  services.regions.registerMetrics(metrics.registry);
  const readiness = readinessProbe(services, () => closing === null);
  const httpServer: Server = createServer(
    createHttpHandler({
      objectStore: services.objectStore,
      images,
      readiness,
      metrics: metrics.endpoint,
      log,
      admin: {
        token: options.adminToken,
        store: new WorkerControlStore(services.redis, options.redisPrefix),
        keys: services.keys,
        region: options.region,
        regions: services.regions,
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
      onAdmitted: (ws, user) => registry.add(ws, user),
      log,
    }),
  );

  const parts: GatewayParts = { options, log, services, startRetries, registry, httpServer, wss };
  return {
    async listen(): Promise<GatewayAddress> {
      address = await listen(parts);
      // This region has a serving gateway while this one accepts connections (region health).
      services.regions.start(() => closing === null);
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
  await parts.services.regions.stop();
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
  parts.services.expectations.close();
  await subscriber.close();
  await redis.quit().catch(() => redis.disconnect());
  if (ownTemporalConnection) await ownTemporalConnection.close().catch(() => undefined);
  parts.log.info('Gateway stopped');
}

function redisReady(redis: RedisClient, timeoutMs: number): Promise<boolean> {
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
