// One place that creates ioredis connections, so every process retries the same way while Redis restarts, and so
// the URL alone decides whether a deployment runs on one Redis server or on a Redis Cluster.
import { Cluster, Redis } from 'ioredis';

export { Cluster, Redis };

/**
 * A connection to the deployment's Redis: one server (`redis://`, `rediss://`) or a Redis Cluster
 * (`redis+cluster://`). Both speak the same commands; on a Cluster every Lua script and MULTI must keep its keys
 * in one hash slot, which is why keys that change together share a `{hash tag}`.
 */
export type RedisClient = Redis | Cluster;

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Scheme of a Redis Cluster URL: `redis+cluster://[user:password@]host:port[,host:port...]`. */
export const REDIS_CLUSTER_SCHEME = 'redis+cluster:';

/** Prefix of every Redis key of a deployment unless ATELIER_REDIS_PREFIX says otherwise. */
export const DEFAULT_REDIS_PREFIX = 'atelier:';

/** Default of ATELIER_REDIS_COMMAND_TIMEOUT_MS (runtime/shared-options.ts). */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2000;

/** A Redis Cluster URL taken apart: the seed nodes (any of its masters; the client learns the rest) and the login. */
export interface RedisClusterAddress {
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
  readonly username?: string;
  readonly password?: string;
}

/** True when `url` names a Redis Cluster rather than one server. */
export function isRedisClusterUrl(url: string): boolean {
  return url.trim().toLowerCase().startsWith(`${REDIS_CLUSTER_SCHEME}//`);
}

function parseClusterNode(address: string, url: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(address);
  const port = match?.[2] === undefined ? 6379 : Number(match[2]);
  if (!match?.[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`Invalid node ${JSON.stringify(address)} in Redis Cluster URL ${redactClusterUrl(url)}`);
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

/**
 * The seed nodes and login of a `redis+cluster://[user:password@]host:port,host:port,...` URL (port 6379 when left
 * out, IPv6 hosts in brackets). Throws a TypeError for a URL that is not one, or that names no node.
 */
export function parseRedisClusterUrl(url: string): RedisClusterAddress {
  if (!isRedisClusterUrl(url)) throw new TypeError(`Not a ${REDIS_CLUSTER_SCHEME}// URL: ${redactClusterUrl(url)}`);
  let rest = url.trim().slice(REDIS_CLUSTER_SCHEME.length + 2);
  // A cluster has only database 0: accept a bare trailing slash or /0, nothing else.
  rest = rest.replace(/\/0?$/, '');
  const at = rest.lastIndexOf('@');
  const login = at === -1 ? undefined : rest.slice(0, at);
  const hosts = at === -1 ? rest : rest.slice(at + 1);
  if (hosts === '' || hosts.includes('/') || hosts.includes('?')) {
    throw new TypeError(`Redis Cluster URL ${redactClusterUrl(url)}: expected host:port[,host:port...]`);
  }
  const nodes = hosts.split(',').map((address) => parseClusterNode(address.trim(), url));
  if (login === undefined) return { nodes };
  const colon = login.indexOf(':');
  const username = decodeURIComponent(colon === -1 ? login : login.slice(0, colon));
  const password = colon === -1 ? undefined : decodeURIComponent(login.slice(colon + 1));
  return {
    nodes,
    ...(username === '' ? {} : { username }),
    ...(password === undefined || password === '' ? {} : { password }),
  };
}

/** The URL for a Redis Cluster whose masters (or some of them) listen at `nodes`. */
export function redisClusterUrl(nodes: readonly { readonly host: string; readonly port: number }[]): string {
  const hosts = nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`);
  return `${REDIS_CLUSTER_SCHEME}//${hosts.join(',')}`;
}

/** The cluster URL without its password, for logs and errors. */
export function redactClusterUrl(url: string): string {
  return url.replace(/^([^:]+:\/\/[^:@/]*:)[^@]*@/, '$1***@');
}

/**
 * A Cluster client whose commands keep the deadline createRedis promises. ioredis arms `commandTimeout` when a node's
 * connection takes a command; while the whole cluster is unreachable there is no such connection, and a command
 * would wait in the cluster's own offline queue without bound. Arming it as the command is issued closes that gap
 * (arming twice keeps the first timer).
 */
class DeadlineCluster extends Cluster {
  override sendCommand(...args: Parameters<Cluster['sendCommand']>): unknown {
    const deadlineMs = this.options.redisOptions?.commandTimeout;
    if (deadlineMs !== undefined) args[0].setTimeout(deadlineMs);
    return super.sendCommand(...args);
  }
}

function retryDelayMs(times: number): number {
  return Math.min(2000, 50 * 2 ** Math.min(times, 6));
}

/**
 * Connects eagerly (ioredis connects at construction) with bounded exponential reconnect back-off. Every command
 * has a deadline (`commandTimeoutMs`, counted from when it is issued, queued while disconnected or sent): a hung or
 * restarting Redis then fails a command within that time instead of never answering, and the caller decides (the
 * gateway answers SERVICE_UNAVAILABLE, activities retry, the rate limiter falls back to memory).
 *
 * A `redis+cluster://` URL makes an ioredis Cluster client with the same deadlines and back-off: it learns the slot
 * map from any seed node and follows MOVED and ASK redirections by itself.
 */
export function createRedis(
  url: string,
  name: string,
  commandTimeoutMs: number = DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
): RedisClient {
  const common = {
    connectionName: `atelier:${name}`,
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 20,
  };
  if (!isRedisClusterUrl(url)) {
    return new Redis(url, { ...common, retryStrategy: retryDelayMs, enableAutoPipelining: true });
  }
  const { nodes, username, password } = parseRedisClusterUrl(url);
  return new DeadlineCluster(
    nodes.map(({ host, port }) => ({ host, port })),
    {
      redisOptions: { ...common, username, password },
      clusterRetryStrategy: retryDelayMs,
      // No auto-pipelining on a Cluster: ioredis groups auto-pipelined commands by the slot of their first argument,
      // which for EVALSHA and script commands (the rate limiter's, the event log's) is not a key, and a group that
      // spans slots throws inside ioredis where nothing can catch it (ioredis issues 2109, 1931): the gateway crashed
      // on the first burst of logins. Single-server clients keep it.
    },
  );
}
