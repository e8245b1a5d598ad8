// Admission of WebSocket clients: an HTTP upgrade is accepted only on the protocol path, only while the gateway is
// not shutting down, and only with a known API key. A source address that keeps presenting bad keys is throttled
// (429 with Retry-After) before its key is even looked up, so guessing keys costs the guesser time, not the gateway. Refusals are plain HTTP answers written on the raw socket, with
// a JSON body saying why, so that clients can tell "wrong URL" from "try again" from "bad key".
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { PROTOCOL_PATH } from '../core/protocol';
import type { Logger } from '../runtime/logger';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { apiKeyFromRequest, type ApiKeyStore, type AuthenticatedUser } from './auth';

export interface UpgradeHandlerOptions {
  /** Completes the WebSocket handshake of admitted requests. */
  readonly wss: WebSocketServer;
  readonly apiKeys: ApiKeyStore;
  /** True from the moment shutdown begins; upgrades are then refused with 503 so clients retry elsewhere. */
  readonly isClosing: () => boolean;
  /** Message of the 503 answer while shutting down. */
  readonly shutdownReason: string;
  /** Receives each socket that passed authentication, with the user its API key belongs to. */
  readonly onAdmitted: (ws: WebSocket, user: AuthenticatedUser) => void;
  readonly log: Logger;
  /** Failed authentications a source address may make per minute before it is answered 429. @default 20 */
  readonly failedAuthPerMinute?: number;
}

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** The listener for the HTTP server's `upgrade` event. */
export function createUpgradeHandler(options: UpgradeHandlerOptions): UpgradeHandler {
  // Per gateway instance, in memory: a guesser spreading over instances gets instances x budget, which still bounds
  // it, and a failed key never costs a Redis round trip.
  const failures = new RateLimiterMemory({ points: options.failedAuthPerMinute ?? 20, duration: 60 });
  return (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    admit(options, failures, req, socket, head).catch((err: unknown) => {
      options.log.error({ err }, 'Upgrade failed');
      refuseUpgrade(socket, 500, { error: 'INTERNAL', message: 'Internal error' });
    });
  };
}

async function admit(
  options: UpgradeHandlerOptions,
  failures: RateLimiterMemory,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== PROTOCOL_PATH) {
    refuseUpgrade(socket, 404, { error: 'NOT_FOUND', message: `WebSocket endpoint is ${PROTOCOL_PATH}` });
    return;
  }
  if (options.isClosing()) {
    const body = { error: 'SHUTTING_DOWN', message: options.shutdownReason };
    refuseUpgrade(socket, 503, body, { 'Retry-After': '1' });
    return;
  }
  const source = req.socket.remoteAddress ?? 'unknown';
  const throttled = await failures.get(source);
  if (throttled && throttled.remainingPoints <= 0) {
    const retryAfterS = Math.max(1, Math.ceil(throttled.msBeforeNext / 1000));
    const body = {
      error: 'TOO_MANY_FAILED_AUTHENTICATIONS',
      message: `Too many bad API keys; retry in ${retryAfterS} s`,
    };
    refuseUpgrade(socket, 429, body, { 'Retry-After': String(retryAfterS) });
    return;
  }
  const apiKey = apiKeyFromRequest(req);
  const user = apiKey === null ? null : await options.apiKeys.authenticate(apiKey);
  if (!user) {
    await failures.penalty(source);
    const body = {
      error: 'UNAUTHORIZED',
      message: 'Missing or unknown API key: send "Authorization: Bearer <key>" or ?api_key=<key>',
    };
    refuseUpgrade(socket, 401, body, { 'WWW-Authenticate': 'Bearer realm="atelier"' });
    return;
  }
  // Authentication may have waited on a key store: shutdown may have begun, or the client gone, meanwhile.
  if (options.isClosing() || socket.destroyed) {
    socket.destroy();
    return;
  }
  options.wss.handleUpgrade(req, socket, head, (ws) => options.onAdmitted(ws, user));
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
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`);
}
