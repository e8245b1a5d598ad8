// The handle on a running local stack (infra/stack.ts launches it): its addresses, its children (those the local
// autoscaling starts included) and the faults chaos experiments inject into them, and its ordered stop.
import type { StackRedis } from './stack-redis';
import type { StackOptions } from './stack-options';
import type { Supervisor } from './supervisor';

/** One region of the stack and where its gateway is. */
export interface StackRegion {
  readonly region: string;
  readonly gatewayHttpUrl: string;
  readonly gatewayWsUrl: string;
}

export interface StackHandle {
  readonly options: StackOptions;
  /** Every region the stack runs, home first (one unless ATELIER_REGIONS lists more). */
  readonly regions: readonly StackRegion[];
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
  /** Bearer token of the gateway's admin API: ATELIER_ADMIN_TOKEN when set, else one made for this start. */
  readonly adminToken: string;
  /**
   * Name and pid of every running child (e.g. `gpu-worker[a10g]`, `temporal`, `redis` when we started them), for
   * chaos tests.
   */
  children(): { name: string; pid: number | undefined }[];
  /** Sends `signal` to one child; unless the stack is stopping it is restarted like any crash. */
  killChild(name: string, signal?: NodeJS.Signals): void;
  /** SIGKILLs one child and keeps it down until startChild(name): a lost machine, for chaos experiments. */
  crashChild(name: string): Promise<void>;
  /** Starts a child crashChild() kept down. */
  startChild(name: string): Promise<void>;
  /** SIGKILLs our redis-server (a crash: unsynced writes are lost). Throws if we did not start it. */
  crashRedis(): Promise<void>;
  /** Starts Redis again on the same port with the same data (append-only file). */
  startRedis(): Promise<void>;
  /** Stops our Temporal dev server (workflows stay in its SQLite file). Throws if we did not start it. */
  stopTemporal(): Promise<void>;
  /** Starts it again on the same port with the same SQLite file. */
  startTemporal(): Promise<void>;
  /** stopTemporal() then startTemporal(). */
  restartTemporal(): Promise<void>;
  /** Ordered shutdown: gateway, workers (they drain), then Redis and Temporal if we started them. */
  stop(): Promise<void>;
}

export function gatewayUrls(gatewayHost: string, port: number): { http: string; ws: string } {
  const host = ['0.0.0.0', '::', '[::]'].includes(gatewayHost) ? '127.0.0.1' : gatewayHost;
  const http = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { http, ws: `${http.replace(/^http/, 'ws')}/v1/ws` };
}

export interface Launched {
  readonly temporal: Supervisor | undefined;
  readonly temporalUrls: () => { ui?: string; metrics?: string };
  readonly redis: StackRedis;
  readonly children: Map<string, Supervisor>;
  readonly apiKey: string;
  readonly adminToken: string;
  /** /metrics of our Node children, by name. */
  readonly metricsUrls: Record<string, string>;
  readonly prometheusUrl?: string | undefined;
  readonly regions: readonly StackRegion[];
}

/** Every metrics endpoint of the stack, Temporal's included: what Prometheus scrapes. */
export function launchedMetricsUrls(
  launched: Launched,
  temporal: { urls: () => { metrics?: string } },
): Record<string, string> {
  const temporalMetrics = temporal.urls().metrics;
  return { ...launched.metricsUrls, ...(temporalMetrics ? { temporal: temporalMetrics } : {}) };
}

export function stackHandle(
  options: StackOptions,
  dataDir: string,
  launched: Launched,
  stop: () => Promise<void>,
): StackHandle {
  const { temporal, redis, children } = launched;
  const urls = gatewayUrls(options.gatewayHost, options.gatewayPort);
  const requireTemporal = (): Supervisor => {
    if (!temporal) throw new Error('This stack uses an existing Temporal server, which it cannot stop or restart');
    return temporal;
  };
  // The launcher's own map, read at each call: GPU workers the local autoscaling starts appear in it while they run.
  const all = (): Map<string, Supervisor> =>
    new Map([...children, ...(temporal ? [['temporal', temporal] as const] : [])]);
  const child = (name: string): Supervisor => {
    const target = all().get(name);
    if (!target) throw new Error(`No child named ${name}; children: ${[...all().keys()].join(', ')}`);
    return target;
  };
  return {
    options,
    regions: launched.regions,
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
    adminToken: launched.adminToken,
    children: () => [
      ...[...all().values()].map((s) => ({ name: s.name, pid: s.pid })),
      ...(redis.pid !== undefined ? [{ name: 'redis', pid: redis.pid }] : []),
    ],
    killChild: (name, signal = 'SIGKILL') => child(name).signal(signal),
    crashChild: (name) => child(name).crash(),
    startChild: (name) => child(name).start(),
    crashRedis: () => redis.crash(),
    startRedis: () => redis.start(),
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
