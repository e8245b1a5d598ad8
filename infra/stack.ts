// The whole of Atelier on one machine: Temporal dev server, Redis, the control worker, one GPU worker per GPU type
// and the WebSocket gateway, as supervised child processes with ordered shutdown. `npm start` (infra/start.ts)
// runs it in the foreground; end-to-end tests use `startStack()` (infra/test-stack.ts) on free ports.
import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../runtime/logger';
import { sharedOptionsEnv } from '../runtime/shared-options';
import { freePort, isLocalHost, parseHostPort } from './ports';
import { childLifelineArgs, delay, killChildrenOnExit, spawnService } from './processes';
import { resolveTemporalCli } from './provision';
import { ensureRedis, type RedisHandle } from './redis-server';
import { repoRoot } from './repo-root';
import { removeStackFile, writeStackFile } from './stack-file';
import { workerHealthPorts } from './stack-metrics';
import { DEV_API_KEY, type StackOptions } from './stack-options';
import { superviseStackPrometheus } from './stack-prometheus';
import { Supervisor } from './supervisor';
import { registerSearchAttributes, startTemporalDevServer, temporalAnswers } from './temporal';

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
  /** Prometheus endpoint of the Temporal dev server we started. */
  readonly temporalMetricsUrl: string | undefined;
  /** Prometheus's UI and API, scraping every process, when it runs. */
  readonly prometheusUrl: string | undefined;
  /**
   * The Prometheus endpoint of every process that serves one, by child name: `gateway`, `control-worker`,
   * `gpu-worker[<type>]`, and `temporal` when we started it. Fixed for this start, across child restarts.
   */
  metricsUrls(): Record<string, string>;
  readonly redisUrl: string;
  readonly dataDir: string;
  /** A key the gateway accepts: the first of ATELIER_API_KEYS when the children have keys, else the dev key. */
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

export interface LaunchContext {
  readonly log: Logger;
  readonly extraEnv: Record<string, string>;
  readonly onOutput: (name: string, line: string) => void;
  readonly abort?: AbortSignal;
}

const ENTRY_POINTS = {
  controlWorker: { script: 'dist/workers/control-worker.js', source: 'workers/control-worker.ts' },
  gpuWorker: { script: 'dist/workers/gpu-worker.js', source: 'workers/gpu-worker.ts' },
  gateway: { script: 'dist/gateway/main.js', source: 'gateway/main.ts' },
} as const;

function assertBuilt(root: string): void {
  const missing = Object.values(ENTRY_POINTS).filter((e) => !existsSync(path.join(root, e.script)));
  if (missing.length === 0) return;
  throw new StackStartError(
    `Missing entry points:\n${missing.map((e) => `  - ${e.script} (compiled from ${e.source})`).join('\n')}\n` +
      'Build with `npm run build` (`npm start` builds automatically); if the source file does not exist yet, that component is not written.',
  );
}

/** Our Temporal dev server, or undefined when a server already answers at the address (then we only use it). */
async function superviseTemporal(
  options: StackOptions,
  dataDir: string,
  ctx: LaunchContext,
): Promise<{ supervisor: Supervisor | undefined; urls: () => { ui?: string; metrics?: string } }> {
  const { log } = ctx;
  if (await temporalAnswers(options.temporalAddress)) {
    log.info({ address: options.temporalAddress }, 'using the Temporal server that answers at TEMPORAL_ADDRESS');
    await registerSearchAttributes(options.temporalAddress, options.temporalNamespace).catch((err: unknown) =>
      log.warn(
        { err },
        'could not register search attributes on the existing Temporal server; register them yourself (see core/search-attributes.ts)',
      ),
    );
    return { supervisor: undefined, urls: () => ({}) };
  }
  const { host, port } = parseHostPort(options.temporalAddress, 7233);
  if (!isLocalHost(host)) {
    throw new StackStartError(
      `No Temporal server answers at TEMPORAL_ADDRESS=${options.temporalAddress}, and it is not a local address where a dev server could be started.`,
    );
  }
  const cliPath = await resolveTemporalCli({ log: (line) => log.info(line) });
  // Fixed once, so the endpoint stays where it was printed across server restarts.
  const metricsPort = options.temporalMetricsPort || (await freePort());
  let urls: { ui?: string; metrics?: string } = {};
  const supervisor = new Supervisor(
    'temporal',
    async () => {
      const server = await startTemporalDevServer({
        cliPath,
        dataDir: path.join(dataDir, 'temporal'),
        host: host.replace(/^\[|\]$/g, ''),
        port,
        uiPort: options.temporalUiPort === 0 ? false : options.temporalUiPort,
        metricsPort,
        namespace: options.temporalNamespace,
        log,
        onOutput: (line) => ctx.onOutput('temporal', line),
        readyTimeoutMs: options.readyTimeoutMs,
      });
      urls = { ui: server.uiUrl, metrics: server.metricsUrl };
      return {
        pid: server.process.pid,
        exited: server.exited,
        stop: server.stop,
        signal: (signal) => server.process.kill(signal),
      };
    },
    log,
  );
  await supervisor.start();
  return { supervisor, urls: () => urls };
}

/** What every Node child gets: the shared settings as resolved here, and where the stack keeps its data. */
function childEnvironment(options: StackOptions, dataDir: string): Record<string, string> {
  const storageDir = options.storageDir ? path.resolve(options.storageDir) : path.join(dataDir, 'objects');
  return {
    ...sharedOptionsEnv({ ...options, storageDir }),
    ATELIER_DATA_DIR: dataDir,
    // Verified copies of the ONNX models the GPU workers serve (one cache, shared: files are renamed into place).
    ATELIER_MODEL_CACHE_DIR: path.join(dataDir, 'models'),
    ATELIER_GATEWAY_HOST: options.gatewayHost,
    ATELIER_GATEWAY_PORT: String(options.gatewayPort),
    ATELIER_GPU_TYPES: options.gpuTypes.join(','),
    // Workers cancel in-flight activities (to be retried elsewhere) this long after SIGTERM; kept below our
    // SIGKILL deadline so they always get to close their connections.
    ATELIER_WORKER_SHUTDOWN_GRACE_MS: String(Math.max(0, options.shutdownTimeoutMs - 5_000)),
  };
}

/** A supervised Node process running one of our entry points. */
function nodeChild(
  spec: { name: string; script: string; env: Record<string, string>; stopGraceMs: number },
  baseEnv: Record<string, string>,
  ctx: LaunchContext,
): Supervisor {
  const root = repoRoot();
  const lifeline = childLifelineArgs(root);
  return new Supervisor(
    spec.name,
    () => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...baseEnv, ...spec.env, ...ctx.extraEnv };
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
    ctx.log,
  );
}

function gatewayUrls(options: StackOptions): { http: string; ws: string } {
  const host = ['0.0.0.0', '::', '[::]'].includes(options.gatewayHost) ? '127.0.0.1' : options.gatewayHost;
  const http = `http://${host.includes(':') ? `[${host}]` : host}:${options.gatewayPort}`;
  return { http, ws: `${http.replace(/^http/, 'ws')}/v1/ws` };
}

interface Launched {
  readonly temporal: Supervisor | undefined;
  readonly temporalUrls: () => { ui?: string; metrics?: string };
  readonly redis: RedisHandle;
  readonly children: Map<string, Supervisor>;
  readonly apiKey: string;
  /** /metrics of our Node children, by name. */
  readonly metricsUrls: Record<string, string>;
  readonly prometheusUrl?: string | undefined;
}

/** Every metrics endpoint of the stack, Temporal's included: what Prometheus scrapes. */
function launchedMetricsUrls(
  launched: Launched,
  temporal: { urls: () => { metrics?: string } },
): Record<string, string> {
  const temporalMetrics = temporal.urls().metrics;
  return { ...launched.metricsUrls, ...(temporalMetrics ? { temporal: temporalMetrics } : {}) };
}

function stackHandle(
  options: StackOptions,
  dataDir: string,
  launched: Launched,
  stop: () => Promise<void>,
): StackHandle {
  const { temporal, redis, children } = launched;
  const urls = gatewayUrls(options);
  const requireTemporal = (): Supervisor => {
    if (!temporal) throw new Error('This stack uses an existing Temporal server, which it cannot stop or restart');
    return temporal;
  };
  const all = new Map(children);
  if (temporal) all.set('temporal', temporal);
  return {
    options,
    gatewayWsUrl: urls.ws,
    gatewayHttpUrl: urls.http,
    temporalAddress: options.temporalAddress,
    temporalNamespace: options.temporalNamespace,
    get temporalUiUrl() {
      return launched.temporalUrls().ui;
    },
    prometheusUrl: launched.prometheusUrl,
    get temporalMetricsUrl() {
      return launched.temporalUrls().metrics;
    },
    metricsUrls: () => {
      const temporalMetrics = launched.temporalUrls().metrics;
      return { ...launched.metricsUrls, ...(temporalMetrics ? { temporal: temporalMetrics } : {}) };
    },
    redisUrl: options.redisUrl,
    dataDir,
    apiKey: launched.apiKey,
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
    stop,
  };
}

/**
 * Brings the stack up in dependency order (Temporal, Redis, workers, gateway) and resolves when the gateway
 * answers GET /readyz with 200. Anything started before a failure is stopped again before the error is thrown.
 */
export async function launchStack(options: StackOptions, ctx: LaunchContext): Promise<StackHandle> {
  const checkAborted = (): void => {
    if (ctx.abort?.aborted) throw new StackStartError('Start-up interrupted');
  };
  const root = repoRoot();
  assertBuilt(root);
  killChildrenOnExit();
  const dataDir = path.resolve(root, options.dataDir);
  await fs.mkdir(dataDir, { recursive: true });

  // Undone in reverse order by stop(): gateway, workers, Redis, Temporal.
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) {
      await fn().catch((err: unknown) => ctx.log.error({ err }, 'error during shutdown'));
    }
  };
  try {
    const temporal = await superviseTemporal(options, dataDir, ctx);
    if (temporal.supervisor) cleanups.push(() => (temporal.supervisor as Supervisor).stop());
    checkAborted();

    // Redis: reuse or start with append-only persistence under the data dir.
    const redis = await ensureRedis({
      url: options.redisUrl,
      dataDir: path.join(dataDir, 'redis'),
      log: ctx.log,
      onOutput: (line) => ctx.onOutput('redis', line),
    });
    cleanups.push(async () => {
      if (!redis.started) return;
      ctx.log.info({ service: 'redis' }, 'stopping redis');
      await redis.stop();
      ctx.log.info({ service: 'redis' }, 'redis stopped');
    });
    checkAborted();

    const baseEnv = childEnvironment(options, dataDir);
    const health = await workerHealthPorts(options, gatewayUrls(options).http, { ...process.env, ...ctx.extraEnv });
    const healthEnv = (name: string): Record<string, string> => ({
      ATELIER_WORKER_HEALTH_PORT: String(health.ports.get(name)),
    });
    const workers = [
      nodeChild(
        {
          name: 'control-worker',
          script: ENTRY_POINTS.controlWorker.script,
          env: healthEnv('control-worker'),
          stopGraceMs: options.shutdownTimeoutMs,
        },
        baseEnv,
        ctx,
      ),
      ...options.gpuTypes.map((gpuType) =>
        nodeChild(
          {
            name: `gpu-worker[${gpuType}]`,
            script: ENTRY_POINTS.gpuWorker.script,
            env: { ATELIER_GPU_TYPE: gpuType, ...healthEnv(`gpu-worker[${gpuType}]`) },
            stopGraceMs: options.shutdownTimeoutMs,
          },
          baseEnv,
          ctx,
        ),
      ),
    ];
    cleanups.push(async () => void (await Promise.all(workers.map((w) => w.stop()))));
    await Promise.all(workers.map((w) => w.start()));

    const gateway = nodeChild(
      { name: 'gateway', script: ENTRY_POINTS.gateway.script, env: {}, stopGraceMs: 15_000 },
      baseEnv,
      ctx,
    );
    cleanups.push(() => gateway.stop());
    await gateway.start();
    await waitForReady(`${gatewayUrls(options).http}/readyz`, options.readyTimeoutMs, ctx.abort);

    const children = new Map<string, Supervisor>([...workers, gateway].map((s) => [s.name, s]));
    let stopping: Promise<void> | undefined;
    const apiKey = firstApiKey({ ...process.env, ...ctx.extraEnv }.ATELIER_API_KEYS) ?? DEV_API_KEY;
    const launched: Launched = {
      temporal: temporal.supervisor,
      temporalUrls: temporal.urls,
      redis,
      children,
      apiKey,
      metricsUrls: health.metricsUrls,
    };
    const prometheus = await superviseStackPrometheus(options, dataDir, launchedMetricsUrls(launched, temporal), ctx);
    if (prometheus) {
      cleanups.push(() => prometheus.supervisor.stop());
      children.set('prometheus', prometheus.supervisor);
    }
    const handle = stackHandle(
      options,
      dataDir,
      { ...launched, prometheusUrl: prometheus?.url },
      () => (stopping ??= cleanup()),
    );
    await recordStackFile(handle, { ...baseEnv, ...ctx.extraEnv }, [
      ...children.values(),
      ...(temporal.supervisor ? [temporal.supervisor] : []),
    ]);
    cleanups.push(() => removeStackFile(dataDir));
    return handle;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The key of the first `key:userId` pair of ATELIER_API_KEYS, if any. */
function firstApiKey(configured: string | undefined): string | undefined {
  const first = configured?.split(',')[0]?.trim() ?? '';
  const colon = first.lastIndexOf(':');
  return colon > 0 ? first.slice(0, colon) : undefined;
}

/** The ATELIER_* variables this launcher runs with (the children get them too). */
function atelierEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (key.startsWith('ATELIER_') && value) out[key] = value;
  return out;
}

/** Writes `<data dir>/stack.json` now and whenever a child restarts with a new pid. */
async function recordStackFile(
  handle: StackHandle,
  env: Record<string, string>,
  services: Supervisor[],
): Promise<void> {
  const write = (): Promise<void> =>
    writeStackFile(handle.dataDir, {
      launcherPid: process.pid,
      writtenAt: new Date().toISOString(),
      gateway: { httpUrl: handle.gatewayHttpUrl, wsUrl: handle.gatewayWsUrl, apiKey: handle.apiKey },
      temporal: {
        address: handle.temporalAddress,
        namespace: handle.temporalNamespace,
        uiUrl: handle.temporalUiUrl ?? null,
        metricsUrl: handle.temporalMetricsUrl ?? null,
      },
      redisUrl: handle.redisUrl,
      redisPrefix: handle.options.redisPrefix,
      region: handle.options.region,
      processes: handle.children().flatMap(({ name, pid }) => {
        const metricsUrl = handle.metricsUrls()[name];
        return pid === undefined ? [] : [{ name, pid, ...(metricsUrl ? { metricsUrl } : {}) }];
      }),
      env: { ...env, ...atelierEnv() },
    });
  for (const service of services) {
    service.onLaunched = () => void write().catch(() => undefined);
  }
  await write();
}

async function waitForReady(url: string, timeoutMs: number, abort?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (abort?.aborted) throw new StackStartError('Start-up interrupted');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${(await res.text()).slice(0, 500)}`;
    } catch (err) {
      last = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    }
    await delay(250);
  }
  throw new StackStartError(`The gateway did not become ready at ${url} within ${timeoutMs} ms (last: ${last})`);
}
