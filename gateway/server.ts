// The gateway process in one object: an HTTP server whose `upgrade` handler authenticates and admits WebSocket
// clients on /v1/ws, the HTTP routes, heartbeats that keep Redis session records alive, and ordered shutdown.
// `createGateway(options, deps)` is what main.ts runs and what tests start in-process against real Redis and
// a real Temporal.
import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client, Connection } from '@temporalio/client';
import { WebSocketServer, type WebSocket } from 'ws';
import { CLOSE_CODES, PROTOCOL_PATH } from '../core/protocol';
import { RedisEventLog, type EventSubscriber } from '../runtime/event-log';
import { createLogger, type Logger } from '../runtime/logger';
import { FsObjectStore, type ObjectStore } from '../runtime/object-store';
import { createRedis, type Redis } from '../runtime/redis';
import { apiKeyFromRequest, StaticApiKeyStore, type ApiKeyStore } from './auth';
import { ClientConnection } from './connection';
import { createHttpHandler, type ReadinessReport } from './http';
import { GenerationOrchestrator } from './orchestrator';
import { urlHost, type GatewayOptions } from './options';
import { RedisRequestRateLimiter, type RequestRateLimiter } from './rate-limit';
import { RedisSessionStore } from './session-store';

/** Collaborators a caller may hand in instead of the ones built from options. Handed-in ones are not closed. */
export interface GatewayDeps {
  /** Temporal client (tests pass TestWorkflowEnvironment's). @default a lazily connecting client for options.temporalAddress */
  readonly temporalClient?: Client;
  /** @default FsObjectStore(options.storageDir) */
  readonly objectStore?: ObjectStore;
  /** @default StaticApiKeyStore.parse(options.apiKeys) */
  readonly apiKeys?: ApiKeyStore;
  /** @default a Redis-backed limiter with options.rateLimitPerMinute */
  readonly rateLimiter?: RequestRateLimiter;
  /** @default createLogger('gateway') */
  readonly logger?: Logger;
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
  const redis: Redis = createRedis(options.redisUrl, 'gateway');
  const subscriberRedis: Redis = createRedis(options.redisUrl, 'gateway-sub');
  const eventLog = new RedisEventLog(redis, { prefix: options.redisPrefix });
  const subscriber: EventSubscriber = eventLog.createSubscriber(subscriberRedis);
  const sessions = new RedisSessionStore(redis, options.redisPrefix, Math.ceil((3 * options.heartbeatIntervalMs) / 1000));
  const rateLimiter = deps.rateLimiter ?? new RedisRequestRateLimiter(redis, options.redisPrefix, options.rateLimitPerMinute);
  const objectStore = deps.objectStore ?? new FsObjectStore(options.storageDir);
  const apiKeys = deps.apiKeys ?? StaticApiKeyStore.parse(options.apiKeys);

  let ownTemporalConnection: Connection | null = null;
  let temporalClient = deps.temporalClient;
  if (!temporalClient) {
    const lazy = GenerationOrchestrator.connectLazily(options.temporalAddress, options.temporalNamespace);
    temporalClient = lazy.client;
    ownTemporalConnection = lazy.connection;
  }
  const orchestrator = new GenerationOrchestrator(temporalClient, { retryWindowMs: options.startRetryMs, log });

  const connections = new Map<WebSocket, { conn: ClientConnection; connectionId: string; alive: boolean }>();
  const inFlight = new Set<Promise<unknown>>();
  const disconnectCleanups = new Set<Promise<unknown>>();
  const shutdown = new AbortController();
  let address: GatewayAddress | null = null;
  let closing: Promise<void> | null = null;

  async function readiness(): Promise<ReadinessReport> {
    const [redisCheck, temporalCheck] = await Promise.all([
      withTimeout(redis.ping(), 1500).then(
        () => ({ ok: true }),
        (err: unknown) => ({ ok: false, error: (err as Error).message }),
      ),
      orchestrator.check(2000),
    ]);
    return { ready: redisCheck.ok && temporalCheck.ok && closing === null, checks: { redis: redisCheck, temporal: temporalCheck } };
  }

  const httpServer: Server = createServer(createHttpHandler({ objectStore, readiness, log }));
  const wss = new WebSocketServer({
    noServer: true,
    // ws closes the socket (1009) above this; frames between MAX_FRAME_BYTES and this get FRAME_TOO_LARGE.
    maxPayload: options.hardMaxFrameBytes,
    perMessageDeflate: false,
  });

  httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    admit(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'Upgrade failed');
      refuseUpgrade(socket, 500, { error: 'INTERNAL', message: 'Internal error' });
    });
  });

  async function admit(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== PROTOCOL_PATH) {
      refuseUpgrade(socket, 404, { error: 'NOT_FOUND', message: `WebSocket endpoint is ${PROTOCOL_PATH}` });
      return;
    }
    if (closing) {
      refuseUpgrade(socket, 503, { error: 'SHUTTING_DOWN', message: SHUTDOWN_REASON }, { 'Retry-After': '1' });
      return;
    }
    const apiKey = apiKeyFromRequest(req);
    const user = apiKey === null ? null : await apiKeys.authenticate(apiKey);
    if (!user) {
      refuseUpgrade(
        socket,
        401,
        { error: 'UNAUTHORIZED', message: 'Missing or unknown API key: send "Authorization: Bearer <key>" or ?api_key=<key>' },
        { 'WWW-Authenticate': 'Bearer realm="atelier"' },
      );
      return;
    }
    if (closing || socket.destroyed) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, user.userId));
  }

  function onConnection(ws: WebSocket, userId: string): void {
    const connectionId = randomUUID();
    const connLog = log.child({ connectionId, userId });
    const conn = new ClientConnection(ws, {
      connectionId,
      userId,
      region: options.region,
      publicBaseUrl: () => address?.publicBaseUrl ?? options.publicBaseUrl,
      maxBufferedBytes: options.maxBufferedBytes,
      orchestrator,
      eventLog,
      subscriber,
      rateLimiter,
      log: connLog,
      trackInFlight: (work) => {
        inFlight.add(work);
        const forget = (): void => void inFlight.delete(work);
        work.then(forget, forget);
      },
      shutdownSignal: shutdown.signal,
    });
    const entry = { conn, connectionId, alive: true };
    connections.set(ws, entry);
    ws.on('error', (err) => connLog.warn({ err: err.message }, 'WebSocket error'));
    ws.on('pong', () => {
      entry.alive = true;
      sessions.refresh(connectionId).catch((err: unknown) => connLog.warn({ err }, 'Session refresh failed'));
    });
    ws.on('close', (code) => {
      connections.delete(ws);
      connLog.debug({ code }, 'Client disconnected');
      const cleanup = Promise.all([
        conn.dispose(),
        sessions.delete(connectionId).catch((err: unknown) => connLog.warn({ err }, 'Session delete failed')),
      ]);
      // Shutdown waits for these before it closes the Redis connections they use.
      disconnectCleanups.add(cleanup);
      void cleanup.finally(() => disconnectCleanups.delete(cleanup));
    });
    sessions
      .create({ connectionId, userId, gatewayId: options.gatewayId, connectedAt: Date.now() })
      .catch((err: unknown) => connLog.warn({ err }, 'Session create failed'));
    connLog.debug('Client connected');
  }

  // One missed pong (a dead peer or a half-open TCP connection) and the socket goes.
  const heartbeat = setInterval(() => {
    for (const [ws, entry] of connections) {
      if (!entry.alive) {
        ws.terminate();
        continue;
      }
      entry.alive = false;
      ws.ping();
    }
  }, options.heartbeatIntervalMs);
  heartbeat.unref();

  async function close(): Promise<void> {
    closing ??= (async () => {
      clearInterval(heartbeat);
      // 1. Stop accepting: no new TCP connections; upgrades already in progress are refused with 503.
      const serverClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      // 2. Tell every client to reconnect elsewhere; their requests keep running and they re-attach by requestId.
      for (const ws of connections.keys()) ws.close(CLOSE_CODES.GOING_AWAY, SHUTDOWN_REASON);
      // 3. Let workflow starts in flight finish (and record `accepted`), up to the grace period.
      const graceEnd = Date.now() + options.shutdownGraceMs;
      await settledWithin([...inFlight], options.shutdownGraceMs);
      shutdown.abort();
      await settledWithin([...inFlight], 1000);
      await settledWithin([...connections.keys()].map(closedEvent), Math.max(500, graceEnd - Date.now()));
      // Sockets that did not finish the closing handshake in time are cut; their 'close' handlers clean up.
      const stragglers = [...connections.keys()];
      for (const ws of stragglers) ws.terminate();
      await settledWithin(stragglers.map(closedEvent), 2000);
      await settledWithin([...disconnectCleanups], 5000);
      httpServer.closeAllConnections();
      await serverClosed;
      wss.close();
      // 4. Then the connections to Redis and Temporal.
      await subscriber.close();
      await redis.quit().catch(() => redis.disconnect());
      if (ownTemporalConnection) await ownTemporalConnection.close().catch(() => undefined);
      log.info('Gateway stopped');
    })();
    return closing;
  }

  return {
    async listen(): Promise<GatewayAddress> {
      // Rate limits fall back to a per-instance counter while Redis is not ready; waiting for it here keeps the
      // first requests on the shared counter. Without Redis the gateway still starts (and reports unready).
      if (!(await redisReady(redis, 5000))) log.warn({ redisUrl: options.redisUrl }, 'Redis is not ready; starting anyway');
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(options.port, options.host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      const bound = httpServer.address() as AddressInfo;
      const httpUrl = `http://${urlHost(options.host)}:${bound.port}`;
      address = {
        host: options.host,
        port: bound.port,
        httpUrl,
        wsUrl: `ws://${urlHost(options.host)}:${bound.port}${PROTOCOL_PATH}`,
        publicBaseUrl: options.publicBaseUrl || httpUrl,
      };
      log.info({ ...address }, 'Gateway listening');
      return address;
    },
    close,
    get address() {
      return address;
    },
    get connectionCount() {
      return connections.size;
    },
  };
}

/** Answers an upgrade request on the raw socket (there is no ServerResponse for upgrades) and closes it. */
function refuseUpgrade(socket: Duplex, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const json = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(json)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`);
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

function closedEvent(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => (ws.readyState === ws.CLOSED ? resolve() : ws.once('close', () => resolve())));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(promises), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
