// Gateway configuration: one typed options object, resolved once from the environment table below (which
// `--help` prints), with a validation pass that throws a clear TypeError on a bad combination.
import { hostname } from 'node:os';
import { formatOptionHelp, parse, resolveOptions, type OptionTable } from '../runtime/options';
import { SHARED_OPTION_TABLE, type SharedOptions } from '../runtime/shared-options';
import { createImageAccess, IMAGE_ACCESS_MODES, parseUrlSigningKeys, type ImageAccessMode } from './image-urls';
import { checkJwtOptions, JWT_OPTION_TABLE, type JwtOptions } from './jwt-auth';
import { isTier, type Tier } from '../core/tiers';

/** JwtOptions: JWT bearer tokens beside the API keys (jwt-auth.ts); off unless ATELIER_JWT_SECRETS is set. */
export interface GatewayOptions extends SharedOptions, JwtOptions {
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
  /** New requests per user per minute, for static keys (ATELIER_API_KEYS); seed 003. @default 100 */
  readonly rateLimitPerMinute: number;
  /** Requests a static key's user may have accepted and not ended at once (seed 003: 50). @default 50 */
  readonly maxInFlightPerUser: number;
  /** Tiers static keys may use. @default ['turbo', 'fast', 'relax'] */
  readonly staticKeyTiers: readonly Tier[];
  /**
   * Requests the whole deployment holds accepted and not ended, across gateways; above it new ones get OVERLOADED
   * (seed 003's 503). 10,000: seed 001's peak of 30 requests/s queued for five minutes, with margin. @default 10000
   */
  readonly maxInFlight: number;
  /** Cancel frames per user per minute. @default 300 */
  readonly cancelLimitPerMinute: number;
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
  /**
   * How GET /v1/images/ decides who may fetch an image (image-urls.ts): `capability`, the unguessable key in the
   * URL is the permission and URLs never expire; `signed`, only URLs a gateway signed, until they expire.
   * @default 'capability'
   */
  readonly imageAccess: ImageAccessMode;
  /**
   * Secrets of signed image URLs, `id:secret,id2:secret2` (ids: letters, digits, `_-`; secrets: at least 32
   * characters). The first signs, every one is accepted: rotate by adding the new secret second, then moving it
   * first, then removing the old one once its URLs have expired. Required when imageAccess is `signed`. @default ''
   */
  readonly imageUrlSecrets: string;
  /**
   * How long a signed image URL stays valid. Milliseconds. @default 3600000 (1 h: a client downloads within
   * seconds of `completed`, and later re-sends the requestId for fresh URLs within the 24 h re-attach window, so a
   * URL that leaked into a log or a browser history is useless an hour on)
   */
  readonly imageUrlTtlMs: number;
  /**
   * How often a client whose request waits for a GPU is told its queue position and ETA (a `status` frame with
   * `queuePosition`, sent only when they changed). Milliseconds; 0 sends none. @default 5000
   */
  readonly queueUpdateIntervalMs: number;
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
    doc: 'New requests per user per minute, for static keys (seed 003: 100)',
    default: 100,
    parse: parse.int(1, 1_000_000),
  },
  maxInFlightPerUser: {
    env: 'ATELIER_MAX_IN_FLIGHT_PER_USER',
    doc: "Requests a static key's user may have in flight at once (seed 003: 50)",
    default: 50,
    parse: parse.int(1, 100_000),
  },
  staticKeyTiers: {
    env: 'ATELIER_STATIC_KEY_TIERS',
    doc: 'Tiers static keys may use (turbo, fast, relax)',
    default: ['turbo', 'fast', 'relax'],
    parse: (raw, env) => {
      const tiers = parse.list(raw);
      for (const t of tiers) if (!isTier(t)) throw new TypeError(`${env}: unknown tier ${JSON.stringify(t)}`);
      if (tiers.length === 0) throw new TypeError(`${env} lists no tier`);
      return tiers as Tier[];
    },
  },
  ...JWT_OPTION_TABLE,
  maxInFlight: {
    env: 'ATELIER_MAX_IN_FLIGHT',
    doc: 'Requests the deployment holds in flight at once; above it new ones get OVERLOADED',
    default: 10_000,
    parse: parse.int(1, 10_000_000),
  },
  cancelLimitPerMinute: {
    env: 'ATELIER_CANCEL_LIMIT_PER_MINUTE',
    doc: 'Cancel frames per user per minute',
    default: 300,
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
  imageAccess: {
    env: 'ATELIER_IMAGE_ACCESS',
    doc: 'Who may fetch an image: capability (anyone with its unguessable URL) or signed (only signed, expiring URLs)',
    default: 'capability',
    parse: (raw, env) => {
      if (!(IMAGE_ACCESS_MODES as readonly string[]).includes(raw)) {
        throw new TypeError(`${env}=${JSON.stringify(raw)}: expected one of ${IMAGE_ACCESS_MODES.join(', ')}`);
      }
      return raw as ImageAccessMode;
    },
  },
  imageUrlSecrets: {
    env: 'ATELIER_IMAGE_URL_SECRETS',
    doc: 'Signed image URLs: id:secret,id2:secret2 (secrets of 32+ characters; the first signs, all are accepted)',
    default: '',
    parse: (raw, env) => {
      parseUrlSigningKeys(raw, env);
      return raw;
    },
  },
  imageUrlTtlMs: {
    env: 'ATELIER_IMAGE_URL_TTL_MS',
    doc: 'How long a signed image URL stays valid, ms (re-attaching by requestId gives fresh URLs)',
    default: 3_600_000,
    parse: parse.int(10_000, 7 * 24 * 3_600_000),
  },
  queueUpdateIntervalMs: {
    env: 'ATELIER_QUEUE_UPDATE_MS',
    doc: 'How often a waiting request is told its queue position and ETA (only when they changed), ms (0 = never)',
    default: 5_000,
    parse: parse.int(0, 600_000),
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
  if (usesDevelopmentKey(options.apiKeys) && !isLoopback(options.host)) {
    throw new TypeError(
      `Refusing to serve the development API key on ${options.host}: set ATELIER_API_KEYS to keys of your own ` +
        '(or create keys through the admin API) before listening beyond loopback',
    );
  }
  if (options.maxBufferedBytes < options.hardMaxFrameBytes / 16) {
    throw new TypeError('ATELIER_GATEWAY_MAX_BUFFERED_BYTES is too small to queue even a few frames');
  }
  // Throws for signed access without secrets, or malformed secrets (also when handed in as overrides).
  createImageAccess(options);
  checkJwtOptions(options);
  return options;
}

/** The documented development key, which anyone who read the README knows. */
export const DEV_API_KEY = 'dev-key';

function usesDevelopmentKey(apiKeys: string): boolean {
  return apiKeys.split(',').some((pair) => pair.trim().slice(0, pair.trim().lastIndexOf(':')) === DEV_API_KEY);
}

/** Whether only this machine can reach `host`: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
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
