// Redis for the local stack and the tests: reuse a Redis that already answers at REDIS_URL, or start a local
// redis-server with append-only persistence (so the event logs of in-flight requests survive a restart of the
// stack), or a throwaway one on a free port for a test run.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Logger } from '../runtime/logger';
import { freePort, isLocalHost } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { resolveRedisServer } from './provision';

export interface EnsureRedisOptions {
  /** Where clients connect, e.g. `redis://127.0.0.1:6379`. */
  url: string;
  /** Directory for the append-only file when we start the server (created if missing). */
  dataDir: string;
  log: Logger;
  /** Receives each line redis-server prints. @default lines go to `log.debug` */
  onOutput?: (line: string) => void;
  /** How long to wait for PING after starting, ms. @default 15 000 */
  readyTimeoutMs?: number;
}

export interface RedisHandle {
  /** URL clients should use (same as asked for). */
  readonly url: string;
  /** True when we started redis-server; false when an existing one answered. */
  readonly started: boolean;
  /** The process we started, if any. */
  readonly process: ServiceProcess | undefined;
  /** Stops the server we started (SIGTERM: Redis flushes the append-only file, then exits); no-op otherwise. */
  stop(): Promise<void>;
}

/** Thrown when no Redis answers at a remote URL, or the redis-server we started does not come up. */
export class RedisStartError extends Error {
  override readonly name = 'RedisStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * True when a Redis at `url` answers PING within `timeoutMs`. A raw RESP exchange rather than a client library:
 * a probe must not retry, and must close its socket whatever is listening (a client library left sockets
 * half-open when the port was held by a non-Redis server).
 */
export function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const commands: string[][] = [];
  if (parsed.password !== '') {
    commands.push([
      'AUTH',
      ...(parsed.username !== '' ? [decodeURIComponent(parsed.username)] : []),
      decodeURIComponent(parsed.password),
    ]);
  }
  commands.push(['PING']);
  const request = commands
    .map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    .join('');

  return new Promise((resolve) => {
    const socket =
      parsed.protocol === 'rediss:' ? tls.connect({ host, port, servername: host }) : net.connect({ host, port });
    let received = '';
    let settled = false;
    const finish = (answered: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once(parsed.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const replies = received.split('\r\n').slice(0, -1);
      if (replies.length >= commands.length) finish(replies[commands.length - 1] === '+PONG');
      else if (replies.some((r) => !r.startsWith('+'))) finish(false);
    });
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/**
 * Uses the Redis at `opts.url` when it answers PING; else, when the URL names this machine, starts redis-server
 * on that port with append-only persistence in `opts.dataDir`, bound to loopback. A remote URL that does not
 * answer is an error: we cannot start a server there.
 */
export async function ensureRedis(opts: EnsureRedisOptions): Promise<RedisHandle> {
  if (await redisAnswers(opts.url)) {
    opts.log.info({ url: redactUrl(opts.url) }, 'using the Redis that answers at REDIS_URL');
    return { url: opts.url, started: false, process: undefined, stop: () => Promise.resolve() };
  }
  const parsed = new URL(opts.url);
  if (!['redis:', 'rediss:'].includes(parsed.protocol))
    throw new TypeError(`REDIS_URL must be a redis:// URL, got ${redactUrl(opts.url)}`);
  if (!isLocalHost(parsed.hostname) || parsed.protocol === 'rediss:') {
    throw new RedisStartError(
      `No Redis answers at ${redactUrl(opts.url)}, and it is not a local address where Atelier could start one.`,
    );
  }
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const password = parsed.password === '' ? undefined : decodeURIComponent(parsed.password);
  const server = await startRedisServer({
    port,
    dataDir: opts.dataDir,
    persistent: true,
    password,
    log: opts.log,
    onOutput: opts.onOutput,
    readyTimeoutMs: opts.readyTimeoutMs,
    url: opts.url,
  });
  return {
    url: opts.url,
    started: true,
    process: server,
    stop: async () => void (await server.stop({ graceMs: 10_000 })),
  };
}

export interface EphemeralRedis extends RedisHandle {
  readonly port: number;
  readonly dataDir: string;
}

/**
 * A private redis-server for a test run: free port, temporary directory, no persistence. `stop()` also removes
 * the directory.
 */
export async function startEphemeralRedis(
  opts: { log?: Logger; onOutput?: (line: string) => void } = {},
): Promise<EphemeralRedis> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-redis-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: ServiceProcess;
  try {
    server = await startRedisServer({ port, dataDir, persistent: false, log: opts.log, onOutput: opts.onOutput, url });
  } catch (err) {
    await fs.rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    port,
    dataDir,
    started: true,
    process: server,
    stop: async () => {
      await server.stop({ graceMs: 5_000 });
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

interface StartRedisServerOptions {
  port: number;
  dataDir: string;
  /** Append-only file (fsync every second) when true; memory only when false. */
  persistent: boolean;
  password?: string;
  url: string;
  log?: Logger;
  onOutput?: (line: string) => void;
  readyTimeoutMs?: number;
}

async function startRedisServer(opts: StartRedisServerOptions): Promise<ServiceProcess> {
  const binary = await resolveRedisServer();
  await fs.mkdir(opts.dataDir, { recursive: true });
  const args = [
    '--port',
    String(opts.port),
    '--bind',
    '127.0.0.1',
    '--dir',
    path.resolve(opts.dataDir),
    '--daemonize',
    'no',
    // RDB snapshots off: the append-only file is the durability story, and snapshots would fork a large process.
    '--save',
    '',
    '--appendonly',
    opts.persistent ? 'yes' : 'no',
    '--appendfsync',
    'everysec',
    ...(opts.password === undefined ? [] : ['--requirepass', opts.password]),
  ];
  const prefix = dieWithParentPrefix();
  const [command, ...commandArgs] = [...prefix, binary, ...args] as [string, ...string[]];
  opts.log?.debug({ binary, args: args.filter((a) => a !== opts.password) }, 'starting redis-server');
  const server = spawnService({
    name: 'redis',
    command,
    args: commandArgs,
    onLine: opts.onOutput ?? ((line) => opts.log?.debug({ redis: line }, 'redis-server output')),
    ownProcessGroup: true,
  });
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new RedisStartError(
        `redis-server on port ${opts.port} exited during start-up (${exit.signal ?? `code ${exit.code}`}); is the port taken by something that is not Redis? Its last output:\n${server.outputTail()}`,
      );
    }
    if (await redisAnswers(opts.url, 500)) {
      opts.log?.info(
        { url: redactUrl(opts.url), dataDir: opts.dataDir, persistent: opts.persistent },
        'redis-server is ready',
      );
      return server;
    }
    await delay(100);
  }
  await server.stop({ graceMs: 2_000 });
  throw new RedisStartError(
    `redis-server on port ${opts.port} did not answer PING in time. Its last output:\n${server.outputTail()}`,
  );
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<invalid url>';
  }
}
