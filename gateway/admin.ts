// The operators' HTTP API, under /admin/, authenticated with a bearer token (ATELIER_ADMIN_TOKEN; without one the API
// is off and says so). It reads the GPU fleets' registry and writes pause, resume and drain orders that the workers
// follow (runtime/worker-control.ts). Every order is logged with who sent it and from where.
//
//   GET  /admin/workers                                   live workers, paused fleets, replacement reports
//   POST /admin/fleets/<gpuType>/<pause|resume|drain>     ?region=<region> (default: this gateway's)
//   POST /admin/workers/<workerId>/<pause|resume|drain>
//   /admin/keys...                                        API keys and their plans (admin-keys.ts)
//
// Errors are JSON `{ error, message }`: 401 UNAUTHORIZED, 403 ADMIN_DISABLED, 400 BAD_ORDER, 404 UNKNOWN_WORKER or
// NOT_FOUND, 405 METHOD_NOT_ALLOWED.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isGpuType } from '../core/gpu';
import type { Logger } from '../runtime/logger';
import type { RegionMonitor } from './region-monitor';
import type { RedisApiKeyStore } from '../runtime/api-key-store';
import { WORKER_ORDERS, type WorkerControlStore, type WorkerOrder } from '../runtime/worker-control';
import { handleKeys } from './admin-keys';

export const ADMIN_ROUTE_PREFIX = '/admin/';

export interface AdminDeps {
  /** Empty: the admin API is off. */
  readonly token: string;
  readonly store: WorkerControlStore;
  /** API keys with plans (admin-keys.ts). */
  readonly keys: RedisApiKeyStore;
  /** The region fleet orders apply to when the request names none. */
  readonly region: string;
  /** Every region's health (GET /admin/regions). */
  readonly regions: Pick<RegionMonitor, 'view'>;
  readonly log: Logger;
}

type Reply = (status: number, body: unknown, headers?: Record<string, string>) => void;

/** Constant-time comparison of two secrets of any length (hashed to equal lengths first). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function authorized(deps: AdminDeps, req: IncomingMessage, reply: Reply): boolean {
  if (deps.token === '') {
    reply(403, { error: 'ADMIN_DISABLED', message: 'The admin API is off: set ATELIER_ADMIN_TOKEN on the gateway' });
    return false;
  }
  const header = req.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : '';
  if (given === '' || !sameSecret(given, deps.token)) {
    reply(
      401,
      { error: 'UNAUTHORIZED', message: 'Send the admin token as "Authorization: Bearer <token>"' },
      {
        'WWW-Authenticate': 'Bearer realm="atelier-admin"',
      },
    );
    return false;
  }
  return true;
}

function isOrder(value: string | undefined): value is WorkerOrder {
  return (WORKER_ORDERS as readonly string[]).includes(value ?? '');
}

/** Handles a request under /admin/. */
export async function handleAdmin(deps: AdminDeps, req: IncomingMessage, reply: Reply): Promise<void> {
  if (!authorized(deps, req, reply)) return;
  const url = new URL(req.url ?? '/', 'http://admin.invalid');
  const parts = url.pathname.slice(ADMIN_ROUTE_PREFIX.length).split('/').map(decodeURIComponent);
  if (parts[0] === 'keys') return handleKeys(deps, req, parts, reply);
  if (parts.length === 1 && parts[0] === 'regions') {
    if (req.method !== 'GET') return reply(405, { error: 'METHOD_NOT_ALLOWED', message: 'GET only' }, { Allow: 'GET' });
    return reply(200, { home: deps.region, regions: await deps.regions.view() });
  }
  if (parts.length === 1 && parts[0] === 'workers') {
    if (req.method !== 'GET') return reply(405, { error: 'METHOD_NOT_ALLOWED', message: 'GET only' }, { Allow: 'GET' });
    const [workers, pausedFleets, replacements] = await Promise.all([
      deps.store.workers(),
      deps.store.pausedFleets(),
      deps.store.replacements(),
    ]);
    return reply(200, { workers, pausedFleets, replacements });
  }
  if (parts.length !== 3 || (parts[0] !== 'fleets' && parts[0] !== 'workers')) {
    return reply(404, { error: 'NOT_FOUND', message: `No admin route ${url.pathname.slice(0, 200)}` });
  }
  if (req.method !== 'POST')
    return reply(405, { error: 'METHOD_NOT_ALLOWED', message: 'POST only' }, { Allow: 'POST' });
  const [kind, target = '', order] = parts;
  if (!isOrder(order)) {
    return reply(400, { error: 'BAD_ORDER', message: `Order must be one of ${WORKER_ORDERS.join(', ')}` });
  }
  const who = { remote: req.socket.remoteAddress, order, kind, target };
  if (kind === 'fleets') {
    if (!isGpuType(target)) return reply(400, { error: 'BAD_ORDER', message: `Unknown GPU fleet ${target}` });
    const region = url.searchParams.get('region') || deps.region;
    const affected = await orderFleet(deps, region, target, order);
    deps.log.warn({ ...who, region, affected }, `admin order: ${order} fleet ${region}/${target}`);
    return reply(202, { order, fleet: target, region, workers: affected });
  }
  const known = (await deps.store.workers()).some((w) => w.workerId === target);
  if (!known && order !== 'resume') {
    return reply(404, { error: 'UNKNOWN_WORKER', message: `No live worker ${target} (GET /admin/workers lists them)` });
  }
  await deps.store.orderWorker(target, order);
  deps.log.warn(who, `admin order: ${order} worker ${target}`);
  return reply(202, { order, worker: target });
}

/**
 * Pause and resume are standing orders for the fleet (workers that join later follow them); a drain is an order to
 * each worker of the fleet that is live now. Returns the ids of the workers live in the fleet.
 */
async function orderFleet(deps: AdminDeps, region: string, gpuType: string, order: WorkerOrder): Promise<string[]> {
  const members = (await deps.store.workers()).filter((w) => w.region === region && w.gpuType === gpuType);
  if (order === 'drain') {
    for (const worker of members) await deps.store.orderWorker(worker.workerId, 'drain');
  } else {
    await deps.store.orderFleet(region, gpuType, order);
  }
  return members.map((w) => w.workerId);
}
