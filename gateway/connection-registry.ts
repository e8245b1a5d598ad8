// The gateway's open client connections: each admitted socket gets its ClientConnection and a session record in
// Redis, heartbeats find dead peers and keep live sessions from expiring, and shutdown closes the sockets and waits
// for the disconnect cleanups that still need Redis. It also tracks the workflow starts shutdown lets finish.
import type { AuthenticatedUser } from './auth';
import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { CLOSE_CODES } from '../core/protocol';
import type { Logger } from '../runtime/logger';
import { settledWithin } from './async';
import { ClientConnection, type ConnectionContext } from './connection';
import type { RedisSessionStore } from './session-store';

/** The part of a connection's context that every connection of this gateway shares. */
export type SharedConnectionContext = Omit<
  ConnectionContext,
  'connectionId' | 'userId' | 'plan' | 'log' | 'trackInFlight'
>;

export interface ConnectionRegistryOptions {
  /** Recorded in each session, so operators see which instance a user is connected through. */
  readonly gatewayId: string;
  /** Ping interval; a socket that has not answered the previous ping by the next one is terminated. */
  readonly heartbeatIntervalMs: number;
  readonly sessions: RedisSessionStore;
  readonly context: SharedConnectionContext;
  readonly log: Logger;
}

interface OpenConnection {
  readonly conn: ClientConnection;
  readonly connectionId: string;
  readonly log: Logger;
  /** Cleared by each ping, set again by a pong. */
  alive: boolean;
}

export class ConnectionRegistry {
  private readonly open = new Map<WebSocket, OpenConnection>();
  /** Workflow starts (each up to its `accepted` event) that shutdown lets finish. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Shutdown waits for these before it closes the Redis connections they use. */
  private readonly disconnectCleanups = new Set<Promise<unknown>>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly options: ConnectionRegistryOptions) {
    this.heartbeat = setInterval(() => this.pingAll(), options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  get count(): number {
    return this.open.size;
  }

  /** Serves an admitted socket from now until it closes. */
  add(ws: WebSocket, user: AuthenticatedUser): void {
    const { userId, plan } = user;
    const connectionId = randomUUID();
    const log = this.options.log.child({ connectionId, userId });
    const conn = new ClientConnection(ws, {
      ...this.options.context,
      connectionId,
      userId,
      plan,
      log,
      trackInFlight: (work) => this.trackInFlight(work),
    });
    const entry: OpenConnection = { conn, connectionId, log, alive: true };
    this.open.set(ws, entry);
    ws.on('error', (err) => log.warn({ err: err.message }, 'WebSocket error'));
    ws.on('pong', () => {
      entry.alive = true;
      this.options.sessions.refresh(connectionId).catch((err: unknown) => log.warn({ err }, 'Session refresh failed'));
    });
    ws.on('close', (code) => this.onClose(ws, entry, code));
    this.options.sessions
      .create({ connectionId, userId, gatewayId: this.options.gatewayId, connectedAt: Date.now() })
      .catch((err: unknown) => log.warn({ err }, 'Session create failed'));
    log.debug('Client connected');
  }

  stopHeartbeat(): void {
    clearInterval(this.heartbeat);
  }

  /** Starts the closing handshake of every socket; clients re-attach to their requests elsewhere by requestId. */
  tellClientsToReconnect(reason: string): void {
    for (const ws of this.open.keys()) ws.close(CLOSE_CODES.GOING_AWAY, reason);
  }

  /** Waits up to `ms` for the workflow starts now in flight. */
  async drainInFlight(ms: number): Promise<void> {
    await settledWithin([...this.inFlight], ms);
  }

  /**
   * Waits up to `handshakeMs` for sockets to finish closing, terminates the rest, then waits (bounded) for every
   * disconnect's cleanup, so that Redis can be closed afterwards.
   */
  async closeSockets(handshakeMs: number): Promise<void> {
    await settledWithin([...this.open.keys()].map(closedEvent), handshakeMs);
    // Their 'close' handlers clean up as for any other disconnect.
    const stragglers = [...this.open.keys()];
    for (const ws of stragglers) ws.terminate();
    await settledWithin(stragglers.map(closedEvent), 2000);
    await settledWithin([...this.disconnectCleanups], 5000);
  }

  private trackInFlight(work: Promise<unknown>): void {
    this.inFlight.add(work);
    const forget = (): void => void this.inFlight.delete(work);
    work.then(forget, forget);
  }

  // One missed pong (a dead peer or a half-open TCP connection) and the socket goes.
  private pingAll(): void {
    for (const [ws, entry] of this.open) {
      if (!entry.alive) {
        ws.terminate();
        continue;
      }
      entry.alive = false;
      ws.ping();
    }
  }

  private onClose(ws: WebSocket, entry: OpenConnection, code: number): void {
    this.open.delete(ws);
    entry.log.debug({ code }, 'Client disconnected');
    const cleanup = Promise.all([
      entry.conn.dispose(),
      this.options.sessions
        .delete(entry.connectionId)
        .catch((err: unknown) => entry.log.warn({ err }, 'Session delete failed')),
    ]);
    this.disconnectCleanups.add(cleanup);
    void cleanup.finally(() => this.disconnectCleanups.delete(cleanup));
  }
}

function closedEvent(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => (ws.readyState === ws.CLOSED ? resolve() : ws.once('close', () => resolve())));
}
