// The whole of Atelier on one machine (`npm start`): Temporal dev server, Redis, the control worker, one GPU worker
// per GPU type and the WebSocket gateway, as supervised child processes with ordered shutdown. End-to-end tests
// use the same launcher through `startStack()`, with free ports and a temporary data directory.
import { promises as fs, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GPU_TYPES, assertRegion, isGpuType, type GpuType } from '../core/gpu';
import { createLogger, type Logger } from '../runtime/logger';
import { formatOptionHelp, parse, resolveOptions, type OptionTable } from '../runtime/options';
import { freePort, isLocalHost, parseHostPort } from './ports';
import { childLifelineArgs, delay, killChildrenOnExit, spawnService, type ProcessExit } from './processes';
import { resolveTemporalCli } from './provision';
import { ensureRedis, redactUrl } from './redis-server';
import { registerSearchAttributes, startTemporalDevServer, temporalAnswers } from './temporal';

export interface StackOptions {
  /** Directory for Temporal's SQLite file, Redis's append-only file and stored images. */
  dataDir: string;
  /** Temporal frontend; a local address where nothing answers gets a dev server started there. */
  temporalAddress: string;
  temporalNamespace: string;
  /** Port of the Temporal Web UI of the dev server we start; 0 runs it headless. */
  temporalUiPort: number;
  /** Redis; a local URL where nothing answers gets a redis-server started there. */
  redisUrl: string;
  gatewayHost: string;
  gatewayPort: number;
  region: string;
  /** One GPU worker process is started per type. */
  gpuTypes: GpuType[];
  /** Log level of every child (pino levels). */
  logLevel: string;
  /** How long start-up may take before it fails, ms. */
  readyTimeoutMs: number;
  /** How long workers get to drain in-flight requests on shutdown before SIGKILL, ms. */
  shutdownTimeoutMs: number;
}

const parseGpuTypes = (raw: string, env: string): GpuType[] => {
  const types = parse.list(raw);
  for (const t of types) {
    if (!isGpuType(t)) throw new TypeError(`${env}: unknown GPU type ${JSON.stringify(t)}; known: ${GPU_TYPES.join(', ')}`);
  }
  if (types.length === 0) throw new TypeError(`${env}: at least one GPU type is needed`);
  return [...new Set(types)] as GpuType[];
};

export const STACK_OPTIONS: OptionTable<StackOptions> = {
  dataDir: { env: 'ATELIER_DATA_DIR', doc: 'Data directory (Temporal SQLite, Redis AOF, images)', default: '.atelier', parse: parse.string },
  temporalAddress: {
    env: 'TEMPORAL_ADDRESS',
    doc: 'Temporal frontend host:port; a dev server is started there unless one answers',
    default: '127.0.0.1:7233',
    parse: parse.string,
  },
  temporalNamespace: { env: 'TEMPORAL_NAMESPACE', doc: 'Temporal namespace', default: 'default', parse: parse.string },
  temporalUiPort: { env: 'TEMPORAL_UI_PORT', doc: 'Temporal Web UI port of the dev server (0 = headless)', default: 8233, parse: parse.int(0, 65535) },
  redisUrl: {
    env: 'REDIS_URL',
    doc: 'Redis URL; a local redis-server is started there unless one answers',
    default: 'redis://127.0.0.1:6379',
    parse: parse.string,
  },
  gatewayHost: { env: 'ATELIER_GATEWAY_HOST', doc: 'Interface the gateway listens on', default: '127.0.0.1', parse: parse.string },
  gatewayPort: { env: 'ATELIER_GATEWAY_PORT', doc: 'Gateway HTTP/WebSocket port', default: 8080, parse: parse.int(1, 65535) },
  region: { env: 'ATELIER_REGION', doc: 'Region of this stack (task queue prefix)', default: 'us-west', parse: (raw) => assertRegion(raw) },
  gpuTypes: {
    env: 'ATELIER_GPU_TYPES',
    doc: `GPU worker fleets to run, comma-separated (${GPU_TYPES.join(', ')})`,
    default: ['a10g', 'a100', 'a100-80gb', 'h100'],
    parse: parseGpuTypes,
  },
  logLevel: { env: 'LOG_LEVEL', doc: 'Log level of every process (trace..fatal)', default: 'info', parse: parse.string },
  readyTimeoutMs: { env: 'ATELIER_READY_TIMEOUT_MS', doc: 'Start-up timeout, ms', default: 120_000, parse: parse.int(1_000, 3_600_000) },
  shutdownTimeoutMs: {
    env: 'ATELIER_SHUTDOWN_TIMEOUT_MS',
    doc: 'Time workers get to drain on shutdown before SIGKILL, ms',
    default: 30_000,
    parse: parse.int(0, 3_600_000),
  },
};

/** The API key the gateway accepts in development (`Authorization: Bearer dev-key` or `?api_key=dev-key`). */
export const DEV_API_KEY = 'dev-key';

/** Thrown when the stack cannot start: a missing entry point, an unreachable remote service, a start-up timeout. */
export class StackStartError extends Error {
  override readonly name = 'StackStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface StackHandle {
  readonly options: StackOptions;
  /** WebSocket endpoint, e.g. `ws://127.0.0.1:8080/v1/ws`. */
  readonly gatewayWsUrl: string;
  /** HTTP base of the gateway, e.g. `http://127.0.0.1:8080`. */
  readonly gatewayHttpUrl: string;
  readonly temporalAddress: string;
  readonly temporalNamespace: string;
  /** Temporal Web UI, when we started a dev server with a UI. */
  readonly temporalUiUrl: string | undefined;
  readonly redisUrl: string;
  readonly dataDir: string;
  readonly apiKey: string;
  /**
   * Name and pid of every running child (e.g. `gpu-worker[a10g]`, `temporal`, `redis` when we started them), for
   * chaos tests.
   */
  children(): { name: string; pid: number | undefined }[];
  /** Sends `signal` to one child; unless the stack is stopping it is restarted like any crash. */
  killChild(name: string, signal?: NodeJS.Signals): void;
  /** Stops our Temporal dev server (workflows stay in its SQLite file). Throws if we did not start it. */
  stopTemporal(): Promise<void>;
  /** Starts it again on the same port with the same SQLite file. */
  startTemporal(): Promise<void>;
  /** stopTemporal() then startTemporal(). */
  restartTemporal(): Promise<void>;
  /** Ordered shutdown: gateway, workers (they drain), then Redis and Temporal if we started them. */
  stop(): Promise<void>;
}

export interface StartStackOverrides extends Partial<StackOptions> {
  /** Extra environment for every child, applied last (e.g. `{ ATELIER_SIM_SPEEDUP: '50' }`). */
  env?: Record<string, string>;
  /** Receives each line a child prints. @default lines are kept only for error messages */
  onOutput?: (name: string, line: string) => void;
}

/** A running process that the supervisor can stop, and whose exit it watches. */
interface RunningService {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  stop(): Promise<void>;
  signal(signal: NodeJS.Signals): void;
}

/**
 * Keeps one service running: restarts it with exponential backoff (0.5 s doubling to 30 s, reset after a
 * minute of uptime) when it exits on its own, and never while it is being stopped.
 */
class Supervisor {
  private running: RunningService | undefined;
  private wanted = false;
  private consecutiveFailures = 0;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    private readonly launch: () => Promise<RunningService>,
    private readonly log: Logger,
  ) {}

  get pid(): number | undefined {
    return this.running?.pid;
  }

  /** First start: a failure here is the caller's error, not something to retry. */
  async start(): Promise<void> {
    this.wanted = true;
    await this.launchOnce();
  }

  async stop(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.restartTimer);
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    this.log.info({ service: this.name, pid: running.pid }, `stopping ${this.name}`);
    await running.stop();
    const exit = await running.exited;
    this.log.info({ service: this.name, pid: running.pid, code: exit.code, signal: exit.signal }, `${this.name} stopped`);
  }

  signal(signal: NodeJS.Signals): void {
    this.running?.signal(signal);
  }

  private async launchOnce(): Promise<void> {
    const running = await this.launch();
    if (!this.wanted) {
      // Stopped while it was starting.
      await running.stop();
      return;
    }
    this.running = running;
    const startedAt = Date.now();
    void running.exited.then((exit) => this.onExit(running, exit, startedAt));
  }

  private onExit(running: RunningService, exit: ProcessExit, startedAt: number): void {
    if (this.running !== running) return;
    this.running = undefined;
    if (!this.wanted) return;
    if (Date.now() - startedAt > 60_000) this.consecutiveFailures = 0;
    this.scheduleRestart(`exited unexpectedly (${exit.signal ?? `code ${exit.code}`})`);
  }

  private scheduleRestart(reason: string): void {
    const backoffMs = Math.min(30_000, 500 * 2 ** this.consecutiveFailures);
    this.consecutiveFailures += 1;
    this.log.warn({ service: this.name, backoffMs }, `${this.name} ${reason}; restarting in ${backoffMs} ms`);
    this.restartTimer = setTimeout(() => {
      if (!this.wanted) return;
      this.launchOnce().catch((err: unknown) => {
        if (this.wanted) this.scheduleRestart(`failed to restart: ${err instanceof Error ? err.message : String(err)}`);
      });
    }, backoffMs);
  }
}

/** Directory holding package.json: dist/infra/stack.js and infra/stack.ts (under tsx) both find the repo root. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'atelier') return dir;
      } catch {
        // Not ours; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`Cannot find the Atelier repository root above ${__dirname}`);
    dir = parent;
  }
}

interface ChildSpec {
  name: string;
  /** Entry point relative to the repo root, e.g. `dist/gateway/main.js`. */
  script: string;
  env: Record<string, string>;
  /** Grace period between SIGTERM and SIGKILL, ms. */
  stopGraceMs: number;
}

const ENTRY_POINTS = {
  controlWorker: { script: 'dist/workers/control-worker.js', source: 'workers/control-worker.ts' },
  gpuWorker: { script: 'dist/workers/gpu-worker.js', source: 'workers/gpu-worker.ts' },
  gateway: { script: 'dist/gateway/main.js', source: 'gateway/main.ts' },
} as const;

/**
 * Brings the stack up and resolves when the gateway answers GET /readyz with 200. Anything started before a
 * failure is stopped again before the error is thrown.
 */
async function launchStack(
  options: StackOptions,
  ctx: { log: Logger; extraEnv: Record<string, string>; onOutput: (name: string, line: string) => void; abort?: AbortSignal },
): Promise<StackHandle> {
  const { log } = ctx;
  const checkAborted = (): void => {
    if (ctx.abort?.aborted) throw new StackStartError('Start-up interrupted');
  };
  const root = repoRoot();
  const missing = Object.values(ENTRY_POINTS).filter((e) => !existsSync(path.join(root, e.script)));
  if (missing.length > 0) {
    throw new StackStartError(
      `Missing entry points:\n${missing.map((e) => `  - ${e.script} (compiled from ${e.source})`).join('\n')}\n` +
        'Build with `npm run build` (`npm start` builds automatically); if the source file does not exist yet, that component is not written.',
    );
  }
  killChildrenOnExit();
  const dataDir = path.resolve(root, options.dataDir);
  await fs.mkdir(dataDir, { recursive: true });

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) {
      await fn().catch((err: unknown) => log.error({ err }, 'error during shutdown'));
    }
  };

  try {
    // Temporal: reuse a server that answers, else start a dev server at that (local) address.
    const { host: temporalHost, port: temporalPort } = parseHostPort(options.temporalAddress, 7233);
    let temporal: Supervisor | undefined;
    let temporalUiUrl: string | undefined;
    if (await temporalAnswers(options.temporalAddress)) {
      log.info({ address: options.temporalAddress }, 'using the Temporal server that answers at TEMPORAL_ADDRESS');
      await registerSearchAttributes(options.temporalAddress, options.temporalNamespace).catch((err: unknown) =>
        log.warn({ err }, 'could not register search attributes on the existing Temporal server; register them yourself (see core/search-attributes.ts)'),
      );
    } else {
      if (!isLocalHost(temporalHost)) {
        throw new StackStartError(`No Temporal server answers at TEMPORAL_ADDRESS=${options.temporalAddress}, and it is not a local address where a dev server could be started.`);
      }
      const cliPath = await resolveTemporalCli({ log: (line) => log.info(line) });
      const uiPort = options.temporalUiPort === 0 ? false : options.temporalUiPort;
      temporal = new Supervisor(
        'temporal',
        async () => {
          const server = await startTemporalDevServer({
            cliPath,
            dataDir: path.join(dataDir, 'temporal'),
            host: temporalHost.replace(/^\[|\]$/g, ''),
            port: temporalPort,
            uiPort,
            namespace: options.temporalNamespace,
            log,
            onOutput: (line) => ctx.onOutput('temporal', line),
            readyTimeoutMs: options.readyTimeoutMs,
          });
          temporalUiUrl = server.uiUrl;
          return {
            pid: server.process.pid,
            exited: server.exited,
            stop: server.stop,
            signal: (signal) => server.process.kill(signal),
          };
        },
        log,
      );
      await temporal.start();
      const startedTemporal = temporal;
      cleanups.push(() => startedTemporal.stop());
    }
    checkAborted();

    // Redis: reuse or start with append-only persistence under the data dir.
    const redis = await ensureRedis({
      url: options.redisUrl,
      dataDir: path.join(dataDir, 'redis'),
      log,
      onOutput: (line) => ctx.onOutput('redis', line),
    });
    cleanups.push(async () => {
      if (!redis.started) return;
      log.info({ service: 'redis' }, 'stopping redis');
      await redis.stop();
      log.info({ service: 'redis' }, 'redis stopped');
    });
    checkAborted();

    const childEnv: Record<string, string> = {
      TEMPORAL_ADDRESS: options.temporalAddress,
      TEMPORAL_NAMESPACE: options.temporalNamespace,
      REDIS_URL: options.redisUrl,
      ATELIER_REGION: options.region,
      ATELIER_DATA_DIR: dataDir,
      ATELIER_STORAGE_DIR: path.join(dataDir, 'objects'),
      // Verified copies of the ONNX models the GPU workers serve (one cache, shared: files are renamed into place).
      ATELIER_MODEL_CACHE_DIR: path.join(dataDir, 'models'),
      ATELIER_GATEWAY_HOST: options.gatewayHost,
      ATELIER_GATEWAY_PORT: String(options.gatewayPort),
      ATELIER_GPU_TYPES: options.gpuTypes.join(','),
      LOG_LEVEL: options.logLevel,
      // Workers cancel in-flight activities (to be retried elsewhere) this long after SIGTERM; kept below our
      // SIGKILL deadline so they always get to close their connections.
      ATELIER_WORKER_SHUTDOWN_GRACE_MS: String(Math.max(0, options.shutdownTimeoutMs - 5_000)),
    };
    const lifeline = childLifelineArgs(root);
    const nodeChild = (spec: ChildSpec): Supervisor =>
      new Supervisor(
        spec.name,
        () => {
          const env: NodeJS.ProcessEnv = { ...process.env, ...childEnv, ...spec.env, ...ctx.extraEnv };
          // Set by `node --test` for its own subprocesses; our children are servers, not test files.
          delete env.NODE_TEST_CONTEXT;
          const child = spawnService({
            name: spec.name,
            command: process.execPath,
            args: [...lifeline, path.join(root, spec.script)],
            env,
            cwd: root,
            onLine: (line) => ctx.onOutput(spec.name, line),
            ownProcessGroup: true,
          });
          return Promise.resolve({
            pid: child.process.pid,
            exited: child.exited,
            stop: async () => void (await child.stop({ graceMs: spec.stopGraceMs })),
            signal: (signal: NodeJS.Signals) => child.process.kill(signal),
          });
        },
        log,
      );

    const workers = [
      nodeChild({ name: 'control-worker', script: ENTRY_POINTS.controlWorker.script, env: {}, stopGraceMs: options.shutdownTimeoutMs }),
      ...options.gpuTypes.map((gpuType) =>
        nodeChild({
          name: `gpu-worker[${gpuType}]`,
          script: ENTRY_POINTS.gpuWorker.script,
          env: { ATELIER_GPU_TYPE: gpuType },
          stopGraceMs: options.shutdownTimeoutMs,
        }),
      ),
    ];
    cleanups.push(async () => {
      await Promise.all(workers.map((w) => w.stop()));
    });
    await Promise.all(workers.map((w) => w.start()));

    const gateway = nodeChild({ name: 'gateway', script: ENTRY_POINTS.gateway.script, env: {}, stopGraceMs: 15_000 });
    cleanups.push(() => gateway.stop());
    await gateway.start();

    const urlHost = ['0.0.0.0', '::', '[::]'].includes(options.gatewayHost) ? '127.0.0.1' : options.gatewayHost;
    const gatewayHttpUrl = `http://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${options.gatewayPort}`;
    await waitForReady(`${gatewayHttpUrl}/readyz`, options.readyTimeoutMs, ctx.abort);

    const all = new Map<string, Supervisor>([...workers, gateway].map((s) => [s.name, s]));
    if (temporal) all.set('temporal', temporal);
    let stopping: Promise<void> | undefined;
    const requireTemporal = (): Supervisor => {
      if (!temporal) throw new Error('This stack uses an existing Temporal server, which it cannot stop or restart');
      return temporal;
    };
    return {
      options,
      gatewayWsUrl: `${gatewayHttpUrl.replace(/^http/, 'ws')}/v1/ws`,
      gatewayHttpUrl,
      temporalAddress: options.temporalAddress,
      temporalNamespace: options.temporalNamespace,
      get temporalUiUrl() {
        return temporalUiUrl;
      },
      redisUrl: options.redisUrl,
      dataDir,
      apiKey: DEV_API_KEY,
      children: () => [
        ...[...all.values()].map((s) => ({ name: s.name, pid: s.pid })),
        ...(redis.process && !redis.process.hasExited ? [{ name: 'redis', pid: redis.process.process.pid }] : []),
      ],
      killChild: (name, signal = 'SIGKILL') => {
        const target = all.get(name);
        if (!target) throw new Error(`No child named ${name}; children: ${[...all.keys()].join(', ')}`);
        target.signal(signal);
      },
      stopTemporal: () => requireTemporal().stop(),
      startTemporal: () => requireTemporal().start(),
      restartTemporal: async () => {
        const t = requireTemporal();
        await t.stop();
        await t.start();
      },
      stop: () => (stopping ??= cleanup()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function waitForReady(url: string, timeoutMs: number, abort?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (abort?.aborted) throw new StackStartError('Start-up interrupted');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    }
    await delay(250);
  }
  throw new StackStartError(`The gateway did not become ready at ${url} within ${timeoutMs} ms (last: ${last})`);
}

/**
 * The stack for end-to-end tests: free ports, a fresh temporary data directory (removed by stop()), a headless
 * Temporal dev server and a private Redis, children logging at `warn`. Anything in `overrides` wins; environment
 * variables are not read (a developer's ATELIER_GATEWAY_PORT must not steer a test). `gatewayPort: 0` picks a
 * free port.
 */
export async function startStack(overrides: StartStackOverrides = {}): Promise<StackHandle> {
  const { env: extraEnv = {}, onOutput, ...optionOverrides } = overrides;
  const tempDir = optionOverrides.dataDir === undefined ? await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-stack-')) : undefined;
  const options: StackOptions = {
    ...resolveOptions(STACK_OPTIONS, {}),
    dataDir: tempDir ?? optionOverrides.dataDir ?? '.atelier',
    temporalAddress: `127.0.0.1:${await freePort()}`,
    temporalUiPort: 0,
    redisUrl: `redis://127.0.0.1:${await freePort()}`,
    gatewayPort: await freePort(),
    logLevel: 'warn',
    readyTimeoutMs: 60_000,
    shutdownTimeoutMs: 10_000,
    ...optionOverrides,
  };
  // Port 0 means "any free port", as for a listening socket; the stack needs to know the real one up front to
  // hand it to the gateway and to probe readiness.
  if (options.gatewayPort === 0) options.gatewayPort = await freePort();
  const log = createLogger('stack', { test: true });
  log.level = process.env.LOG_LEVEL ?? 'warn';
  const tails = new Map<string, string[]>();
  const remember = (name: string, line: string): void => {
    const tail = tails.get(name) ?? [];
    tail.push(line);
    if (tail.length > 40) tail.shift();
    tails.set(name, tail);
    onOutput?.(name, line);
    if (process.env.ATELIER_STACK_LOGS === '1') process.stderr.write(`${name} | ${line}\n`);
  };
  let handle: StackHandle;
  try {
    handle = await launchStack(options, { log, extraEnv, onOutput: remember });
  } catch (err) {
    if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
    if (err instanceof StackStartError && tails.size > 0) {
      const output = [...tails].map(([name, lines]) => `--- ${name}\n${lines.join('\n')}`).join('\n');
      throw new StackStartError(`${err.message}\nRecent output of the stack's processes:\n${output}`, { cause: err });
    }
    throw err;
  }
  const stop = handle.stop;
  let stopped: Promise<void> | undefined;
  return Object.assign(handle, {
    stop: () =>
      (stopped ??= (async () => {
        await stop();
        if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
      })()),
  });
}

const NAME_COLORS = [36, 33, 35, 32, 34, 96, 93, 95, 92, 94];

/** `npm start`: runs the stack in the foreground until SIGINT/SIGTERM. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      formatOptionHelp(
        'npm start — run Atelier locally: Temporal dev server, Redis, control worker, one GPU worker per type, gateway.',
        STACK_OPTIONS,
      ),
    );
    return;
  }
  const options = resolveOptions(STACK_OPTIONS);
  const log = createLogger('stack');
  const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
  const width = Math.max(14, ...options.gpuTypes.map((t) => `gpu-worker[${t}]`.length));
  const colors = new Map<string, number>();
  const onOutput = (name: string, line: string): void => {
    if (!colors.has(name)) colors.set(name, NAME_COLORS[colors.size % NAME_COLORS.length] ?? 36);
    const label = name.padEnd(width);
    process.stdout.write(`${color ? `\x1b[${colors.get(name)}m${label}\x1b[0m` : label} | ${line}\n`);
  };

  let handle: StackHandle | undefined;
  let shuttingDownSince: number | undefined;
  const startup = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDownSince !== undefined) {
      // One Ctrl-C reaches us twice (from the terminal and forwarded by npm/bootstrap); only a deliberate
      // second press a moment later forces the exit.
      if (Date.now() - shuttingDownSince > 2_000) {
        log.warn('second signal: killing all processes now');
        process.exit(1);
      }
      return;
    }
    shuttingDownSince = Date.now();
    log.info({ signal }, 'shutting down: gateway, then workers (draining), then Redis and Temporal');
    if (!handle) {
      // launchStack notices between steps, stops what it started and rejects.
      startup.abort();
      return;
    }
    handle.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  log.info(
    { dataDir: options.dataDir, temporal: options.temporalAddress, redis: redactUrl(options.redisUrl), gpuTypes: options.gpuTypes },
    'starting Atelier',
  );
  try {
    handle = await launchStack(options, { log, extraEnv: {}, onOutput, abort: startup.signal });
  } catch (err) {
    if (startup.signal.aborted) process.exit(0);
    throw err;
  }
  const banner = [
    '',
    'Atelier is up.',
    `  WebSocket API    ${handle.gatewayWsUrl}`,
    `  HTTP API         ${handle.gatewayHttpUrl}`,
    `  Temporal Web UI  ${handle.temporalUiUrl ?? '(not started by us: see your Temporal server)'}`,
    `  Temporal         ${handle.temporalAddress} (namespace ${handle.temporalNamespace})`,
    `  Redis            ${redactUrl(handle.redisUrl)}`,
    `  Dev API key      ${handle.apiKey}`,
    `  Data             ${handle.dataDir}`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ];
  process.stdout.write(`${banner.join('\n')}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`\nnpm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
    // Children are already stopped by launchStack's own cleanup; the exit hook SIGKILLs any stragglers.
    setTimeout(() => process.exit(1), 100).unref();
  });
}
