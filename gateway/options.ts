// Gateway configuration: one typed options object, resolved once from the environment table below (which
// `--help` prints), with a validation pass that throws a clear TypeError on a bad combination.
import { hostname } from 'node:os';
import { formatOptionHelp, parse, resolveOptions, type OptionTable } from '../runtime/options';
import { SHARED_OPTION_TABLE, type SharedOptions } from '../runtime/shared-options';

export interface GatewayOptions extends SharedOptions {
  /** Interface the HTTP/WebSocket server binds to. @default '127.0.0.1' */
  readonly host: string;
  /** TCP port; 0 picks a free one (tests). @default 8080 */
  readonly port: number;
  /**
   * Base URL clients use to reach this gateway's HTTP routes; image URLs in `completed` frames start with it.
   * @default `http://<host>:<port>` (filled in by resolveGatewayOptions, or at listen time when the port is 0)
   */
  readonly publicBaseUrl: string;
  /** Static API keys, `key:userId,key2:userId2`. @default 'dev-key:dev' */
  readonly apiKeys: string;
  /** Accepted `generate` frames per user per minute. @default 120 */
  readonly rateLimitPerMinute: number;
  /** Identifies this instance in session records. @default `<hostname>:<pid>` */
  readonly gatewayId: string;
  /** Interval of WebSocket pings; a connection that missed one pong is closed. Milliseconds. @default 30000 */
  readonly heartbeatIntervalMs: number;
  /**
   * How long a `generate` keeps retrying the workflow start while Temporal is unreachable before it is rejected
   * with SERVICE_UNAVAILABLE. Milliseconds. @default 30000
   */
  readonly startRetryMs: number;
  /**
   * Outbound bytes a connection may have queued (ws `bufferedAmount`) before the gateway disconnects it as a
   * client that does not read. Bytes. @default 8388608 (8 MiB)
   */
  readonly maxBufferedBytes: number;
  /**
   * Frames above this size close the socket with 1009; frames between MAX_FRAME_BYTES (64 KiB) and this get a
   * FRAME_TOO_LARGE error and the connection stays open. Bytes. @default 1048576 (1 MiB)
   */
  readonly hardMaxFrameBytes: number;
  /** How long shutdown waits for sockets to close and in-flight starts to finish. Milliseconds. @default 10000 */
  readonly shutdownGraceMs: number;
  /**
   * Bearer token of the admin API (/admin/: fleet registry, pause, resume, drain); at least 16 characters. Empty:
   * the admin API answers 403 ADMIN_DISABLED. @default ''
   */
  readonly adminToken: string;
}

export const GATEWAY_OPTION_TABLE: OptionTable<GatewayOptions> = {
  ...SHARED_OPTION_TABLE,
  host: { env: 'ATELIER_GATEWAY_HOST', doc: 'Interface to bind', default: '127.0.0.1', parse: parse.string },
  port: { env: 'ATELIER_GATEWAY_PORT', doc: 'TCP port (0 = any free port)', default: 8080, parse: parse.int(0, 65535) },
  publicBaseUrl: {
    env: 'ATELIER_PUBLIC_URL',
    doc: 'Base URL of image links in completed frames (empty = http://<host>:<port>)',
    default: '',
    parse: parse.string,
  },
  apiKeys: {
    env: 'ATELIER_API_KEYS',
    doc: 'Static API keys: key:userId,key2:userId2',
    default: 'dev-key:dev',
    parse: parse.string,
  },
  rateLimitPerMinute: {
    env: 'ATELIER_RATE_LIMIT_PER_MINUTE',
    doc: 'Accepted generate frames per user per minute',
    default: 120,
    parse: parse.int(1, 1_000_000),
  },
  gatewayId: {
    env: 'ATELIER_GATEWAY_ID',
    doc: 'Instance id in session records (empty = <hostname>:<pid>)',
    default: '',
    parse: parse.string,
  },
  heartbeatIntervalMs: {
    env: 'ATELIER_GATEWAY_HEARTBEAT_MS',
    doc: 'WebSocket ping interval, ms; one missed pong closes the connection',
    default: 30_000,
    parse: parse.int(100, 3_600_000),
  },
  startRetryMs: {
    env: 'ATELIER_GATEWAY_START_RETRY_MS',
    doc: 'How long a workflow start is retried while Temporal is unreachable, ms',
    default: 30_000,
    parse: parse.int(0, 600_000),
  },
  maxBufferedBytes: {
    env: 'ATELIER_GATEWAY_MAX_BUFFERED_BYTES',
    doc: 'Outbound bytes queued for a client before it is disconnected as not reading',
    default: 8 * 1024 * 1024,
    parse: parse.int(1024, 1024 * 1024 * 1024),
  },
  hardMaxFrameBytes: {
    env: 'ATELIER_GATEWAY_HARD_MAX_FRAME_BYTES',
    doc: 'Frames above this many bytes close the socket with 1009',
    default: 1024 * 1024,
    parse: parse.int(64 * 1024, 64 * 1024 * 1024),
  },
  shutdownGraceMs: {
    env: 'ATELIER_GATEWAY_SHUTDOWN_GRACE_MS',
    doc: 'How long shutdown waits for sockets and in-flight starts, ms',
    default: 10_000,
    parse: parse.int(0, 600_000),
  },
  adminToken: {
    env: 'ATELIER_ADMIN_TOKEN',
    doc: 'Bearer token of the admin API at /admin/ (at least 16 characters; empty = admin API off)',
    default: '',
    parse: (raw, env) => {
      if (raw !== '' && raw.length < 16) throw new TypeError(`${env} must be at least 16 characters`);
      return raw;
    },
  },
};

/** Resolves defaults, then the environment, then `overrides`; fills derived defaults and validates. */
export function resolveGatewayOptions(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<GatewayOptions> = {},
): GatewayOptions {
  const raw = resolveOptions(GATEWAY_OPTION_TABLE, env, overrides);
  const options: GatewayOptions = {
    ...raw,
    gatewayId: raw.gatewayId || `${hostname()}:${process.pid}`,
    publicBaseUrl: (raw.publicBaseUrl || (raw.port === 0 ? '' : `http://${urlHost(raw.host)}:${raw.port}`)).replace(
      /\/+$/,
      '',
    ),
  };
  if (options.publicBaseUrl !== '' && !/^https?:\/\/[^/]+/.test(options.publicBaseUrl)) {
    throw new TypeError(`ATELIER_PUBLIC_URL=${JSON.stringify(options.publicBaseUrl)}: expected an http(s) URL`);
  }
  if (options.maxBufferedBytes < options.hardMaxFrameBytes / 16) {
    throw new TypeError('ATELIER_GATEWAY_MAX_BUFFERED_BYTES is too small to queue even a few frames');
  }
  return options;
}

/** A host as it appears in a URL: IPv6 literals in brackets, the unspecified address as loopback. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

export function gatewayHelp(): string {
  return formatOptionHelp(
    'atelier gateway: WebSocket protocol v1 on /v1/ws, images on /v1/images/<key>',
    GATEWAY_OPTION_TABLE,
  );
}
