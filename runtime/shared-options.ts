// The settings every Atelier process shares, declared once: the gateway, both workers and the local-stack launcher
// spread this table into their own, so a variable means the same thing, with the same default and the same
// validation, wherever it is read. The launcher passes the values it resolved on to the processes it starts.
import { DEFAULT_REGION, assertRegion } from '../core/gpu';
import { LOG_LEVELS, type LogLevel } from './logger';
import { parse, type OptionTable } from './options';
import { parsePeerStorage } from './region-stores';
import { DEFAULT_REDIS_COMMAND_TIMEOUT_MS, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL } from './redis';

export interface SharedOptions {
  /** Temporal frontend, host:port. @default '127.0.0.1:7233' */
  readonly temporalAddress: string;
  /** Temporal namespace. @default 'default' */
  readonly temporalNamespace: string;
  /**
   * Redis: request event logs, sessions, rate limits. One server: `redis://[user:password@]host:port[/db]` (or
   * `rediss://` for TLS). A Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port...]`, naming some or
   * all of its masters (the client learns the rest); no TLS or database number there. @default 'redis://127.0.0.1:6379'
   */
  readonly redisUrl: string;
  /**
   * Prefix of every Redis key and channel. Every process of one deployment must use the same one: the workers
   * publish request events under it and the gateways read them there. @default 'atelier:'
   */
  readonly redisPrefix: string;
  /**
   * How long one Redis command may take before it fails, ms. Redis answers in well under a millisecond; a command
   * still unanswered after this (Redis hung, or down and reconnecting) fails, so a client hears SERVICE_UNAVAILABLE
   * and the rate limit moves to its in-memory stand-in instead of waiting without bound. @default 2000
   */
  readonly redisCommandTimeoutMs: number;
  /** Region whose task queues this process serves. @default 'us-west' */
  readonly region: string;
  /** Root of the filesystem object store (staged and stored images). @default '.atelier/objects' */
  readonly storageDir: string;
  /**
   * The object stores of the other regions, `region=directory,...` (runtime/region-stores.ts): staged images are read
   * from the region whose GPU made them, a gateway serves an image from its origin until it is replicated here, and
   * the control worker replicates each region's images into this one's. Empty: one store that every region shares.
   * @default ''
   */
  readonly peerStorage: string;
  /** pino level of this process's logs. @default 'info' */
  readonly logLevel: LogLevel;
  /**
   * Chaos experiments only: extra latency added to every object-store operation, ms (seed 001 `storage_latency`).
   * @default 0
   */
  readonly chaosStorageLatencyMs: number;
}

function parseRedisPrefix(raw: string, env: string): string {
  // Spaces and glob characters would make keys that SCAN patterns and redis-cli users trip over.
  if (!/^[A-Za-z0-9._:{}-]{1,64}$/.test(raw)) {
    throw new TypeError(`${env}=${JSON.stringify(raw)}: expected 1 to 64 letters, digits or ._:{}- (e.g. "atelier:")`);
  }
  return raw;
}

function parseLogLevel(raw: string, env: string): LogLevel {
  const level = raw.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new TypeError(`${env}=${JSON.stringify(raw)}: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LogLevel;
}

export const SHARED_OPTION_TABLE: OptionTable<SharedOptions> = {
  temporalAddress: {
    env: 'TEMPORAL_ADDRESS',
    doc: 'Temporal frontend host:port (`npm start` starts a dev server there unless one answers)',
    default: '127.0.0.1:7233',
    parse: parse.string,
  },
  temporalNamespace: { env: 'TEMPORAL_NAMESPACE', doc: 'Temporal namespace', default: 'default', parse: parse.string },
  redisUrl: {
    env: 'REDIS_URL',
    doc: 'Redis URL: redis://host:port for one server (`npm start` starts redis-server there unless one answers), or redis+cluster://host:port,host:port,... for a Redis Cluster (attached to, never started)',
    default: DEFAULT_REDIS_URL,
    parse: parse.string,
  },
  redisPrefix: {
    env: 'ATELIER_REDIS_PREFIX',
    doc: 'Prefix of every Redis key; the same for every process of a deployment',
    default: DEFAULT_REDIS_PREFIX,
    parse: parseRedisPrefix,
  },
  redisCommandTimeoutMs: {
    env: 'ATELIER_REDIS_COMMAND_TIMEOUT_MS',
    doc: 'Longest wait for one Redis command before it fails (clients then get SERVICE_UNAVAILABLE), ms',
    default: DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
    parse: parse.int(50, 60_000),
  },
  region: {
    env: 'ATELIER_REGION',
    doc: 'Region whose task queues this process serves',
    default: DEFAULT_REGION,
    parse: (raw) => assertRegion(raw),
  },
  storageDir: {
    env: 'ATELIER_STORAGE_DIR',
    doc: 'Root of the filesystem object store (`npm start`: <data dir>/objects)',
    default: '.atelier/objects',
    parse: parse.string,
  },
  peerStorage: {
    env: 'ATELIER_PEER_STORAGE',
    doc: "The other regions' object stores, `region=dir,...`: read across regions, replicated into this one (`npm start` with ATELIER_REGIONS sets it; empty: one shared store)",
    default: '',
    parse: (raw, env) => {
      parsePeerStorage(raw, '', env);
      return raw;
    },
  },
  logLevel: { env: 'LOG_LEVEL', doc: `Log level (${LOG_LEVELS.join(', ')})`, default: 'info', parse: parseLogLevel },
  chaosStorageLatencyMs: {
    env: 'ATELIER_CHAOS_STORAGE_LATENCY_MS',
    doc: 'Chaos experiments only: latency added to every object-store operation, ms (0 = none)',
    default: 0,
    parse: parse.int(0, 60_000),
  },
};

/** The shared settings as environment variables, for a launcher handing them to the processes it starts. */
export function sharedOptionsEnv(options: SharedOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of Object.keys(SHARED_OPTION_TABLE) as (keyof SharedOptions)[]) {
    env[SHARED_OPTION_TABLE[key].env] = String(options[key]);
  }
  return env;
}
