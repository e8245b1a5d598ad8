// What the control worker and the GPU worker processes share: their common options, the workflow bundle, the
// supervisor of their Temporal Workers (supervised-worker.ts), the /healthz, /readyz and /metrics endpoint, and
// ordered shutdown on SIGINT/SIGTERM (stop polling, let in-flight tasks drain, then close connections).
import { DefaultLogger, Runtime, type LogEntry, type WorkerOptions } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { bundleGenerationWorkflows, defaultBundlePath, type BundleVariant } from './workflow-bundle';
import type { Logger } from '../runtime/logger';
import { parse, type OptionTable } from '../runtime/options';
import { SHARED_OPTION_TABLE, type SharedOptions } from '../runtime/shared-options';

export { closeServer, startHealthServer, type Readiness } from './health-server';
export { SupervisedWorker, type SupervisedWorkerOptions, type SupervisorState } from './supervised-worker';

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
