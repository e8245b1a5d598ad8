// The gateway's plain HTTP routes: generated images from the object store, liveness and readiness probes, the
// Prometheus metrics of the process, and the operators' admin API (admin.ts). Every other path answers 404 with a JSON body, so probes and clients never see
// an HTML error page.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROTOCOL_PATH } from '../core/protocol';
import { serveMetrics, type MetricsEndpoint } from '../runtime/metrics';
import { ADMIN_ROUTE_PREFIX, handleAdmin, type AdminDeps } from './admin';
import { assertObjectKey, InvalidObjectKeyError, type ObjectStore } from '../runtime/object-store';
import type { Logger } from '../runtime/logger';

export const IMAGE_ROUTE_PREFIX = '/v1/images/';
/**
 * Only final images are public (activities/object-keys.ts `finalImageKey`). Staging copies, conditioning uploads
 * and anything else in the store answer 404 as if absent.
 */
export const PUBLIC_KEY_PREFIX = 'images/';

export interface DependencyCheck {
  readonly ok: boolean;
  readonly error?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: {
    readonly redis: DependencyCheck;
    readonly temporal: DependencyCheck;
    /** Whether the workers use this gateway's ATELIER_REDIS_PREFIX (absent when the check is off). */
    readonly redisPrefix?: DependencyCheck & { readonly prefix: string; readonly state: string };
  };
}

export interface HttpRouteDeps {
  readonly objectStore: ObjectStore;
  readonly readiness: () => Promise<ReadinessReport>;
  /** What GET /metrics serves (Prometheus text format). */
  readonly metrics: MetricsEndpoint;
  readonly log: Logger;
  /** The admin API; absent: /admin/ is not a route. */
  readonly admin?: AdminDeps;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(json);
}

export function createHttpHandler(deps: HttpRouteDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    route(deps, req, res).catch((err: unknown) => {
      deps.log.error({ err, url: req.url }, 'HTTP handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'INTERNAL', message: 'Internal error' });
      else res.destroy();
    });
  };
}

async function route(deps: HttpRouteDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // The raw path, not a URL-normalized one: `/v1/images/../x` must reach the key check and be refused, not be
  // quietly resolved to another path.
  const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
  const isRead = req.method === 'GET' || req.method === 'HEAD';

  const probe = rawPath === '/healthz' || rawPath === '/readyz' || rawPath === '/metrics';
  if (probe || rawPath.startsWith(IMAGE_ROUTE_PREFIX)) {
    if (!isRead) {
      sendJson(
        res,
        405,
        { error: 'METHOD_NOT_ALLOWED', message: `${req.method ?? ''} is not allowed here` },
        { Allow: 'GET, HEAD' },
      );
      return;
    }
  }
  if (rawPath === '/healthz') {
    sendJson(res, 200, { status: 'ok' });
    return;
  }
  if (rawPath === '/readyz') {
    const report = await deps.readiness();
    sendJson(res, report.ready ? 200 : 503, report);
    return;
  }
  if (rawPath === '/metrics') {
    await serveMetrics(deps.metrics, req.method, res);
    return;
  }
  if (rawPath.startsWith(IMAGE_ROUTE_PREFIX)) {
    await serveImage(deps, req, res, rawPath.slice(IMAGE_ROUTE_PREFIX.length));
    return;
  }
  if (rawPath.startsWith(ADMIN_ROUTE_PREFIX) && deps.admin) {
    await handleAdmin(deps.admin, req, (status, body, headers) => sendJson(res, status, body, headers));
    return;
  }
  if (rawPath === PROTOCOL_PATH) {
    sendJson(
      res,
      426,
      { error: 'UPGRADE_REQUIRED', message: `${PROTOCOL_PATH} speaks WebSocket only` },
      { Upgrade: 'websocket' },
    );
    return;
  }
  sendJson(res, 404, { error: 'NOT_FOUND', message: `No route for ${req.method ?? 'GET'} ${rawPath.slice(0, 200)}` });
}

async function serveImage(
  deps: HttpRouteDeps,
  req: IncomingMessage,
  res: ServerResponse,
  encodedKey: string,
): Promise<void> {
  let key: string;
  try {
    key = assertObjectKey(decodeURIComponent(encodedKey));
  } catch (err) {
    if (err instanceof URIError || err instanceof InvalidObjectKeyError) {
      sendJson(res, 400, { error: 'BAD_KEY', message: 'Invalid image key' });
      return;
    }
    throw err;
  }
  if (!key.startsWith(PUBLIC_KEY_PREFIX)) {
    sendJson(res, 404, { error: 'NOT_FOUND', message: `No image ${key}` });
    return;
  }
  const object = req.method === 'HEAD' ? await headOnly(deps.objectStore, key) : await deps.objectStore.get(key);
  if (!object) {
    sendJson(res, 404, { error: 'NOT_FOUND', message: `No image ${key}` });
    return;
  }
  const etag = `"${object.info.sha256}"`;
  const headers = {
    ETag: etag,
    // Keys are never reused for different content (an image's key names its request and index), so caches may
    // keep a response forever.
    'Cache-Control': 'public, max-age=31536000, immutable',
    'Content-Type': object.info.contentType || 'image/png',
  };
  if (ifNoneMatch(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': object.info.size });
  res.end(object.body ?? undefined);
}

async function headOnly(
  store: ObjectStore,
  key: string,
): Promise<{ body: null; info: NonNullable<Awaited<ReturnType<ObjectStore['head']>>> } | null> {
  const info = await store.head(key);
  return info ? { body: null, info } : null;
}

function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
