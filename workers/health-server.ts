// The HTTP endpoint of a worker process: `/healthz` for liveness, `/readyz` for readiness (the JSON says what is not
// ready) and `/metrics` for Prometheus. Off unless ATELIER_WORKER_HEALTH_PORT names a port (`npm start` gives each
// worker one).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../runtime/logger';
import { serveMetrics, type MetricsEndpoint } from '../runtime/metrics';

/** What /readyz reports; `ready` decides 200 or 503. */
export interface Readiness {
  readonly ready: boolean;
  readonly [detail: string]: unknown;
}

/**
 * Serves `/healthz` (200 while the process answers and `liveness().ready` holds, else 503), `/readyz` (200 when `readiness().ready`, else 503; the body is the
 * readiness JSON either way) and, given `metrics`, `/metrics` (Prometheus text format). Resolves with the server, or
 * undefined when port is 0.
 */
export async function startHealthServer(
  host: string,
  port: number,
  readiness: () => Readiness | Promise<Readiness>,
  log: Logger,
  metrics?: MetricsEndpoint,
  liveness?: () => Readiness,
): Promise<Server | undefined> {
  if (port === 0) return undefined;
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, { error: 'method not allowed' });
    if (path === '/healthz') {
      const live = liveness?.() ?? { ready: true };
      return reply(live.ready ? 200 : 503, { ok: live.ready, ...live });
    }
    if (path === '/metrics' && metrics) {
      serveMetrics(metrics, req.method, res).catch((err: unknown) => log.warn({ err }, 'serving /metrics failed'));
      return;
    }
    if (path === '/readyz') {
      Promise.resolve()
        .then(readiness)
        .then(
          (r) => reply(r.ready ? 200 : 503, r),
          (err: unknown) => reply(503, { ready: false, error: err instanceof Error ? err.message : String(err) }),
        );
      return;
    }
    reply(404, { error: 'not found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  log.info({ health: `http://${host}:${(server.address() as AddressInfo).port}` }, 'health endpoint listening');
  return server;
}

export function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
