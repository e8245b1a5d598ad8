// The gateway's plain HTTP routes: generated images from the object store (images.ts), liveness and readiness
// probes, the Prometheus metrics of the process, and the operators' admin API (admin.ts). Every other path answers
// 404 with a JSON body, so probes and clients never see an HTML error page. Error bodies never carry internal
// details (file paths, host names, stack traces): those go to the log.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROTOCOL_PATH } from '../core/protocol';
import { serveMetrics, type MetricsEndpoint } from '../runtime/metrics';
import { ADMIN_ROUTE_PREFIX, handleAdmin, type AdminDeps } from './admin';
import type { ObjectStore } from '../runtime/object-store';
import type { Logger } from '../runtime/logger';
import type { ImageAccess } from './image-urls';
import { IMAGE_ROUTE_PREFIX, serveImage } from './images';

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
  /** Which image URLs are served (image-urls.ts). */
  readonly images: ImageAccess;
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
  const routes = { ...deps, readiness: publicReadiness(deps.readiness, deps.log) };
  return (req, res) => {
    route(routes, req, res).catch((err: unknown) => {
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
    await serveImage(deps, req, res, rawPath, sendJson);
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

/**
 * /readyz as anyone who reaches the port sees it: whether each dependency answers, not why not. The messages of
 * failed checks name hosts and ports (`connect ECONNREFUSED 10.0.3.7:6379`), so they go to the log instead, once
 * each time they change rather than on every probe.
 */
function publicReadiness(readiness: () => Promise<ReadinessReport>, log: Logger): () => Promise<ReadinessReport> {
  let logged = '';
  const hidden = 'not answering (details in the gateway log)';
  return async () => {
    const report = await readiness();
    const { redis, temporal } = report.checks;
    const problems = JSON.stringify({ redis: redis.error, temporal: temporal.error });
    if (problems !== logged && (redis.error !== undefined || temporal.error !== undefined)) {
      log.warn({ redis: redis.error, temporal: temporal.error }, 'Readiness check failed');
    }
    logged = problems;
    return {
      ...report,
      checks: {
        ...report.checks,
        redis: redis.ok ? redis : { ok: false, error: hidden },
        temporal: temporal.ok ? temporal : { ok: false, error: hidden },
      },
    };
  };
}
