// What the control worker and the GPU worker processes share: their common options, the workflow bundle, a
// supervisor that keeps a Temporal Worker running across Temporal server restarts (reconnect with back-off and
// recreate the Worker whenever it stops without being asked to), the /healthz, /readyz and /metrics endpoint, and
// ordered shutdown on SIGINT/SIGTERM (stop polling, let in-flight tasks drain, then close connections).
import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type LogEntry,
  type WorkerOptions,
} from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleGenerationWorkflows, defaultBundlePath, type BundleVariant } from './workflow-bundle';
import type { Logger } from '../runtime/logger';
import { parse, type OptionTable } from '../runtime/options';
import { SHARED_OPTION_TABLE, type SharedOptions } from '../runtime/shared-options';

export { closeServer, startHealthServer, type Readiness } from './health-server';

export interface CommonWorkerOptions extends SharedOptions {
  /** Port of /healthz, /readyz and /metrics; 0 serves none (and binds no SDK metrics port). @default 0 */
  readonly healthPort: number;
  /** Interface the health endpoint listens on. @default '127.0.0.1' */
  readonly healthHost: string;
  /**
   * On shutdown, how long in-flight activities may run before they are cancelled (the server then retries them
   * on another worker), milliseconds. Keep it below the supervisor's SIGKILL grace (30 s in `npm start`).
   * @default 25000
   */
  readonly shutdownGraceMs: number;
  /** Longest wait between two reconnection attempts while Temporal is unreachable, milliseconds. @default 5000 */
  readonly reconnectMaxBackoffMs: number;
  /**
   * Port on 127.0.0.1 where the Temporal SDK serves its own Prometheus metrics, which /metrics appends to this
   * process's; 0 lets the OS pick a free one. Only bound while the health port is on. @default 0
   */
  readonly sdkMetricsPort: number;
}

export const COMMON_WORKER_OPTIONS: OptionTable<CommonWorkerOptions> = {
  ...SHARED_OPTION_TABLE,
  healthPort: {
    env: 'ATELIER_WORKER_HEALTH_PORT',
    doc: 'Port of /healthz, /readyz and /metrics (0 = off)',
    default: 0,
    parse: parse.int(0, 65535),
  },
  healthHost: {
    env: 'ATELIER_WORKER_HEALTH_HOST',
    doc: 'Interface of the health endpoint',
    default: '127.0.0.1',
    parse: parse.string,
  },
  shutdownGraceMs: {
    env: 'ATELIER_WORKER_SHUTDOWN_GRACE_MS',
    doc: 'On shutdown, time in-flight activities get before they are cancelled and retried elsewhere, ms',
    default: 25_000,
    parse: parse.int(0, 3_600_000),
  },
  reconnectMaxBackoffMs: {
    env: 'ATELIER_WORKER_RECONNECT_MAX_MS',
    doc: 'Longest wait between reconnection attempts while Temporal is unreachable, ms',
    default: 5_000,
    parse: parse.int(100, 600_000),
  },
  sdkMetricsPort: {
    env: 'ATELIER_WORKER_SDK_METRICS_PORT',
    doc: "Local port of the Temporal SDK's Prometheus endpoint, appended to /metrics (0 = a free port)",
    default: 0,
    parse: parse.int(0, 65535),
  },
};

export interface WorkflowBundleOptions {
  /**
   * Prebuilt workflow bundle (from `npm run build`). Empty: use dist/workflow-bundle.js when running compiled
   * code, else bundle the workflow sources at start-up (so `tsx` never runs a stale bundle). @default ''
   */
  readonly workflowBundle: string;
}

export const WORKFLOW_BUNDLE_OPTIONS: OptionTable<WorkflowBundleOptions> = {
  workflowBundle: {
    env: 'ATELIER_WORKFLOW_BUNDLE',
    doc: 'Prebuilt workflow bundle; empty = dist/workflow-bundle.js when compiled, else bundle sources at start',
    default: '',
    parse: parse.string,
  },
};

/** The workflow code for `Worker.create`: a prebuilt file, or the sources bundled now with the production options. */
export async function loadWorkflowBundle(
  configured: string,
  log: Logger,
  variant: BundleVariant = 'plain',
): Promise<NonNullable<WorkerOptions['workflowBundle']>> {
  if (configured) {
    if (!existsSync(configured))
      throw new TypeError(`ATELIER_WORKFLOW_BUNDLE=${configured}: no such file (run \`npm run build\`)`);
    return { codePath: configured };
  }
  const runningCompiled = __filename.endsWith('.js');
  const prebuilt = defaultBundlePath(variant);
  if (runningCompiled && existsSync(prebuilt)) return { codePath: prebuilt };
  log.info({ runningCompiled, variant }, 'no prebuilt workflow bundle; bundling workflow sources');
  const { code } = await bundleGenerationWorkflows(variant, { logger: new DefaultLogger('WARN') });
  return { code };
}

/** Where the SDK's Prometheus exporter listens (`127.0.0.1:<port>`), and the labels it puts on every sample. */
export interface SdkMetricsOptions {
  readonly bindAddress: string;
  readonly globalTags: Record<string, string>;
}

/**
 * Routes the Temporal SDK's own logs (and Core's) into our structured logger and, given `sdkMetrics`, has Core serve
 * its metrics in Prometheus format. Names follow Prometheus conventions: durations in seconds with the unit in the
 * name (`temporal_activity_schedule_to_start_latency_seconds`), counters ending `_total`. Call once, before any
 * connection.
 */
export function installTemporalRuntime(log: Logger, sdkMetrics?: SdkMetricsOptions): void {
  const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  Runtime.install({
    ...(sdkMetrics
      ? {
          telemetryOptions: {
            metrics: {
              globalTags: sdkMetrics.globalTags,
              prometheus: {
                bindAddress: sdkMetrics.bindAddress,
                unitSuffix: true,
                useSecondsForDurations: true,
                countersTotalSuffix: true,
              },
            },
          },
        }
      : {}),
    logger: new DefaultLogger('INFO', (entry: LogEntry) => {
      // A GPU worker runs activities only, by design; the SDK warns about that at every start.
      const level = entry.message.startsWith('No workflows registered') ? 'debug' : levels[entry.level];
      log[level]({ ...entry.meta, sdk: true }, entry.message);
    }),
    // We handle signals ourselves (ordered shutdown); the SDK would otherwise shut workers down on its own.
    shutdownSignals: [],
  });
}

/** `held`: asked to take no work (paused, unhealthy, breaker open, reloading a model); no Worker polls. */
export type SupervisorState = 'connecting' | 'running' | 'held' | 'reconnecting' | 'stopping' | 'stopped';

export interface SupervisedWorkerOptions {
  /** Shown in logs, e.g. `control-worker`. */
  readonly name: string;
  readonly temporalAddress: string;
  readonly temporalNamespace: string;
  readonly reconnectMaxBackoffMs: number;
  /** Builds the Worker options on each (re)connection; the connection and namespace are filled in. */
  readonly workerOptions: () => Omit<WorkerOptions, 'connection' | 'namespace'>;
  readonly log: Logger;
}

/**
 * Keeps one Temporal Worker running until `stop()`. If connecting fails, or the Worker stops or fails on its
 * own (a Temporal server restart can end its pollers with a fatal error), it logs, waits (exponential back-off
 * up to `reconnectMaxBackoffMs`), reconnects and creates a fresh Worker. Work is never lost meanwhile: workflow
 * and activity tasks stay in Temporal and are retried or redelivered once a Worker polls again.
 *
 * `hold(reason)` takes the process out of its task queue without ending it: the Worker shuts down gracefully (it
 * polls no more; tasks in flight get the shutdown grace time, then are handed back to run elsewhere), and no new
 * Worker starts until every hold is released. An idle worker therefore never polls for work it could only fail,
 * and a poll can never bring a task to a worker that is on its way out: shutting the Worker down ends its polls.
 */
export class SupervisedWorker {
  private current: { worker: Worker; connection: NativeConnection } | undefined;
  private stopping = false;
  private wake: AbortController = new AbortController();
  private loop: Promise<void> | undefined;
  private restarts = 0;
  private lastError: string | undefined;
  /** Why the process takes no work, by reason (`paused`, `unhealthy`, ...), with a detail for /readyz and logs. */
  private readonly holds = new Map<string, string>();
  private holdsReleased: AbortController = new AbortController();
  /** Whether the current Worker was shut down because of a hold (not by a failure). */
  private shutDownForHold = false;
  state: SupervisorState = 'connecting';

  constructor(private readonly options: SupervisedWorkerOptions) {}

  /** Starts the supervision loop; resolves once the first Worker runs, or when a hold or stop() comes first. */
  start(): Promise<void> {
    this.loop ??= this.supervise();
    return this.waitUntilRunning();
  }

  /** Whether a Worker is polling right now. */
  get running(): boolean {
    return this.state === 'running' && this.current?.worker.getState() === 'RUNNING';
  }

  describe(): Record<string, unknown> {
    return {
      name: this.options.name,
      state: this.state,
      workerState: this.current?.worker.getState() ?? null,
      restarts: this.restarts,
      holds: Object.fromEntries(this.holds),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** The reasons the process takes no work right now; empty while it does. */
  heldFor(): Record<string, string> {
    return Object.fromEntries(this.holds);
  }

  /** Stops taking work for `reason` until `release(reason)`; in-flight tasks finish (within the grace time). */
  hold(reason: string, detail: string = reason): void {
    const first = this.holds.size === 0;
    this.holds.set(reason, detail);
    if (!first) return;
    this.options.log.warn({ worker: this.options.name, reason, detail }, 'taking no new work');
    this.holdsReleased = new AbortController();
    this.shutDownForHold = this.current !== undefined;
    this.shutdownCurrent();
  }

  /** Lifts one hold; once none is left, a Worker polls again. */
  release(reason: string): void {
    if (!this.holds.delete(reason) || this.holds.size > 0) return;
    this.options.log.info({ worker: this.options.name, reason }, 'taking work again');
    this.holdsReleased.abort();
  }

  /** Graceful stop: no new tasks, in-flight ones get the shutdown grace time, then the connection closes. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.state = 'stopping';
    this.wake.abort();
    this.holdsReleased.abort();
    this.shutdownCurrent();
    await this.loop;
    this.state = 'stopped';
  }

  private async waitUntilRunning(): Promise<void> {
    while (!this.running) {
      // Held from the start (a worker joining a paused fleet): started, and deliberately not polling.
      if (this.stopping || this.holds.size > 0) return;
      await sleep(50);
    }
  }

  private shutdownCurrent(): void {
    const worker = this.current?.worker;
    if (worker?.getState() === 'RUNNING') worker.shutdown();
  }

  /** While held: no connection, no Worker, until every hold is released or stop() is called. */
  private async waitWhileHeld(): Promise<void> {
    if (this.holds.size === 0 || this.stopping) return;
    this.state = 'held';
    await new Promise<void>((resolve) => {
      if (this.holdsReleased.signal.aborted) return resolve();
      this.holdsReleased.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  private async supervise(): Promise<void> {
    const { log, name } = this.options;
    for (let attempt = 0; !this.stopping;) {
      await this.waitWhileHeld();
      if (this.stopping) break;
      let connection: NativeConnection | undefined;
      try {
        connection = await NativeConnection.connect({ address: this.options.temporalAddress });
        const worker = await Worker.create({
          ...this.options.workerOptions(),
          connection,
          namespace: this.options.temporalNamespace,
        });
        this.current = { worker, connection };
        this.shutDownForHold = this.holds.size > 0;
        const run = worker.run();
        if (this.stopping || this.holds.size > 0) this.shutdownCurrent();
        this.state = 'running';
        this.lastError = undefined;
        log.info({ worker: name, taskQueue: worker.options.taskQueue, restarts: this.restarts }, 'worker running');
        attempt = 0;
        await run;
        // Shut down for a hold: on purpose, so no back-off; the loop waits while any hold remains.
        if (this.shutDownForHold && !this.stopping) continue;
        if (!this.stopping) log.warn({ worker: name }, 'worker stopped on its own; recreating it');
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        if (!this.stopping)
          log.warn(
            { worker: name, err: this.lastError, attempt },
            'worker failed or Temporal unreachable; reconnecting',
          );
      } finally {
        this.current = undefined;
        await connection?.close().catch((err: unknown) => log.debug({ err }, 'closing the Temporal connection failed'));
      }
      if (this.stopping) break;
      this.state = 'reconnecting';
      this.restarts++;
      const backoffMs =
        Math.min(this.options.reconnectMaxBackoffMs, 200 * 2 ** Math.min(attempt, 10)) * (0.8 + Math.random() * 0.4);
      attempt++;
      await sleep(backoffMs, undefined, { signal: this.wake.signal }).catch(() => undefined);
    }
  }
}

/**
 * Runs `shutdown` on the first SIGINT or SIGTERM, then exits 0 (1 if it threw). A second signal exits at once:
 * the operator asked twice. Returns a function that starts the same shutdown from inside the process (a drain order,
 * a GPU error), exiting with `exitCode` once it is done.
 */
export function onShutdownSignal(
  log: Logger,
  shutdown: (reason: string) => Promise<void>,
): (reason: string, exitCode?: number) => void {
  let shuttingDown = false;
  const begin = (reason: string, exitCode: number): void => {
    shuttingDown = true;
    log.info({ reason }, 'shutting down: draining in-flight tasks');
    shutdown(reason).then(
      () => {
        log.info({ exitCode }, 'shut down cleanly');
        process.exit(exitCode);
      },
      (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  const handler = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      log.warn({ signal }, 'second signal: exiting without draining');
      process.exit(1);
    }
    begin(signal, 0);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return (reason, exitCode = 0) => {
    if (!shuttingDown) begin(reason, exitCode);
  };
}

/** `--help`: prints the environment table and exits. Returns normally when not asked for help. */
export function handleHelpFlag(text: string): void {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(text);
    process.exit(0);
  }
}
