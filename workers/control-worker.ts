// The control worker of a region: runs the generateImage workflows and the cheap activities around inference
// (safety screen, storage, event publishing) on `<region>.control`. GPU work runs elsewhere (gpu-worker.ts), so
// control capacity scales with request count and GPU capacity with GPU count.
//
//   node dist/workers/control-worker.js [--help]
import type { WorkerOptions } from '@temporalio/worker';
import os from 'node:os';
import { createControlActivities } from '../activities';
import { SAFETY_SCREEN_OPTIONS, createPromptScreen, type SafetyScreenOptions } from '../activities/safety-http';
import { controlTaskQueue } from '../core/gpu';
import { RedisEventLog } from '../runtime/event-log';
import { createLogger, type Logger } from '../runtime/logger';
import { formatOptionHelp, parse, resolveOptions, type OptionTable } from '../runtime/options';
import { PrefixAgreement } from '../runtime/prefix-agreement';
import { startTracing, type Tracing } from '../runtime/tracing';
import { createRedis, type RedisClient } from '../runtime/redis';
import { RegionQueueSampler } from './region-metrics';
import { readSharedBreakers, registerBreakerMetrics } from './breaker-metrics';
import { GlobalFailureRate, OutcomeCountingEventLog } from '../runtime/global-breaker';
import { LiveRequests } from '../runtime/live-requests';
import { withQueueLeaving } from '../runtime/queue-positions';
import { CapacityStore } from '../runtime/capacity-store';
import { RegionBeats } from '../runtime/region-beats';
import { startRegionFailover } from './region-failover';
import { startRegionImages } from './region-images';
import {
  AUTOSCALER_OPTIONS,
  autoscalerActivities,
  ensureAutoscaler,
  type AutoscalerOptions,
} from './autoscaler-starter';
import type { AutoscalerActivities } from '../core/activities';
import { ModelBreakers } from '../runtime/model-breakers';
import { setUpWorkerMetrics } from './worker-metrics';
import {
  COMMON_WORKER_OPTIONS,
  SupervisedWorker,
  WORKFLOW_BUNDLE_OPTIONS,
  closeServer,
  handleHelpFlag,
  loadWorkflowBundle,
  onShutdownSignal,
  startHealthServer,
  type CommonWorkerOptions,
  type WorkflowBundleOptions,
} from './worker-runtime';
import { tracingWorkerOptions } from './worker-tracing';

export interface ControlWorkerOptions
  extends CommonWorkerOptions, WorkflowBundleOptions, SafetyScreenOptions, AutoscalerOptions {
  /** Control activities (safety, storage, events) run at once by one worker. @default 200 */
  readonly maxConcurrentActivities: number;
  /** Workflow executions kept in memory between tasks (sticky cache). @default 1000 */
  readonly maxCachedWorkflows: number;
  /**
   * Interval of the region's queue metrics (task-queue backlogs, requests in pending_safety), which this worker
   * samples for the region and serves on /metrics; 0 samples none. Milliseconds. @default 5000
   */
  readonly queueMetricsIntervalMs: number;
  /**
   * Interval of the failover rounds (workers/region-failover.ts): adopting a dead region's control queue and moving its
   * waiting requests to the nearest healthy region; 0 turns it off. Milliseconds. @default 5000
   */
  readonly regionFailoverIntervalMs: number;
}

export const CONTROL_WORKER_OPTIONS: OptionTable<ControlWorkerOptions> = {
  ...COMMON_WORKER_OPTIONS,
  ...WORKFLOW_BUNDLE_OPTIONS,
  ...SAFETY_SCREEN_OPTIONS,
  ...AUTOSCALER_OPTIONS,
  maxConcurrentActivities: {
    env: 'ATELIER_CONTROL_MAX_ACTIVITIES',
    doc: 'Control activities (safety, storage, events) run at once',
    default: 200,
    parse: parse.int(1, 10_000),
  },
  maxCachedWorkflows: {
    env: 'ATELIER_CONTROL_MAX_CACHED_WORKFLOWS',
    doc: 'Workflow executions kept in the sticky cache',
    default: 1000,
    parse: parse.int(0, 100_000),
  },
  queueMetricsIntervalMs: {
    env: 'ATELIER_CONTROL_QUEUE_METRICS_MS',
    doc: "Interval of the region's task-queue samples (backlog on /metrics, capacity for admission) and pending_safety count, ms (0 = off)",
    default: 5_000,
    parse: parse.int(0, 600_000),
  },
  regionFailoverIntervalMs: {
    env: 'ATELIER_REGION_FAILOVER_MS',
    doc: "Interval of the failover rounds: adopt a dead region's control queue, move its waiting requests (0 = off), ms",
    default: 5_000,
    parse: parse.int(0, 600_000),
  },
};

/**
 * Worker options of a control worker; the entry point below and the workflow tests both use this, so tests run
 * the production wiring (task queue, bundle, limits) with their own activities.
 */
export function controlWorkerOptions(args: {
  region: string;
  /** The control activities, and the autoscaler's where this worker runs it. */
  activities: ReturnType<typeof createControlActivities> & Partial<AutoscalerActivities>;
  workflowBundle: NonNullable<WorkerOptions['workflowBundle']>;
  maxConcurrentActivities?: number;
  maxCachedWorkflows?: number;
  shutdownGraceMs?: number;
  /** The process's tracing (runtime/tracing.ts); off when absent. */
  tracing?: Pick<Tracing, 'spanProcessor' | 'resource'>;
}): Omit<WorkerOptions, 'connection' | 'namespace'> {
  return {
    ...tracingWorkerOptions(args.tracing),
    taskQueue: controlTaskQueue(args.region),
    workflowBundle: args.workflowBundle,
    activities: args.activities,
    maxConcurrentActivityTaskExecutions: args.maxConcurrentActivities ?? 200,
    maxCachedWorkflows: args.maxCachedWorkflows ?? 1000,
    shutdownGraceTime: args.shutdownGraceMs ?? 25_000,
  };
}

/**
 * The region's queues are sampled here, by one process per region: for /metrics, and for the gateways' admission by
 * capacity, which reads each GPU queue's sample from Redis.
 */
function startQueueSampler(
  options: ControlWorkerOptions,
  registry: ConstructorParameters<typeof RegionQueueSampler>[0],
  capacity: CapacityStore,
  log: Logger,
): RegionQueueSampler | undefined {
  if (options.queueMetricsIntervalMs <= 0) return undefined;
  const sampler = new RegionQueueSampler(registry, {
    region: options.region,
    temporalAddress: options.temporalAddress,
    namespace: options.temporalNamespace,
    intervalMs: options.queueMetricsIntervalMs,
    log,
    publish: (taskQueue, snapshot) => capacity.publish(taskQueue, snapshot),
  });
  sampler.start();
  return sampler;
}

/** The failover of dead regions (workers/region-failover.ts), adopting a region with a Worker of `workerOptions`. */
function startFailover(
  options: ControlWorkerOptions,
  redis: RedisClient,
  log: Logger,
  workerOptions: (region: string) => ReturnType<typeof controlWorkerOptions>,
) {
  return startRegionFailover({
    region: options.region,
    temporalAddress: options.temporalAddress,
    temporalNamespace: options.temporalNamespace,
    intervalMs: options.regionFailoverIntervalMs,
    redis,
    prefix: options.redisPrefix,
    log,
    adoptWorker: (region) =>
      new SupervisedWorker({
        name: `control-worker[adopted ${region}]`,
        temporalAddress: options.temporalAddress,
        temporalNamespace: options.temporalNamespace,
        reconnectMaxBackoffMs: options.reconnectMaxBackoffMs,
        log: log.child({ adopted: region }),
        workerOptions: () => workerOptions(region),
      }),
  });
}

async function main(): Promise<void> {
  handleHelpFlag(
    formatOptionHelp(
      'control-worker: runs generateImage workflows and the safety, storage and event activities.',
      CONTROL_WORKER_OPTIONS,
    ),
  );
  const options = resolveOptions(CONTROL_WORKER_OPTIONS);
  const tracing = startTracing('atelier-control-worker');
  const log = createLogger('control-worker', { region: options.region }, options.logLevel);
  const metrics = await setUpWorkerMetrics('control-worker', options, log);

  const redis = createRedis(options.redisUrl, 'control-worker', options.redisCommandTimeoutMs);
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  const screen = createPromptScreen(options, log);
  const globalRate = new GlobalFailureRate(redis, options.redisPrefix);
  // This region's store, the peers' (a failed-over request's staged images), and replication between them.
  const images = startRegionImages(options, redis, metrics.registry, log);
  const controlActivities = createControlActivities({
    screen,
    ...images.storage,
    // Each request's outcome also feeds seed 001's global breaker as its terminal event is first written, and a
    // request that ends while it waits for a GPU leaves its queue's set (its peers' queue positions).
    eventLog: withQueueLeaving(
      new OutcomeCountingEventLog(
        new RedisEventLog(redis, { prefix: options.redisPrefix }),
        globalRate,
        (err) => log.warn({ err }, 'could not count an outcome or release a live request'),
        new LiveRequests(redis, options.redisPrefix),
      ),
      redis,
      options.redisPrefix,
      log,
    ),
  });
  const activities = {
    ...controlActivities,
    ...(options.autoscaler
      ? autoscalerActivities(redis, options.redisPrefix, metrics.registry, options.region, options)
      : {}),
  };
  const breakers = { modelBreakers: new ModelBreakers(redis, options.redisPrefix, log), globalRate, log };
  registerBreakerMetrics(metrics.registry, breakers);
  const prefixAgreement = new PrefixAgreement({ redis, prefix: options.redisPrefix, role: 'control-worker', log });
  prefixAgreement.start();
  // The health endpoint comes up first: bundling the sources (dev) takes seconds, and /readyz says so meanwhile.
  const started: { worker?: SupervisedWorker } = {};
  const health = await startHealthServer(
    options.healthHost,
    options.healthPort,
    async () => ({
      ready: started.worker?.running === true && redis.status === 'ready',
      breakers: await readSharedBreakers(breakers),
      worker: started.worker?.describe() ?? { state: 'loading workflow bundle' },
      redis: redis.status,
      redisPrefix: prefixAgreement.status,
      safetyScreen: screen.name,
    }),
    log,
    metrics.endpoint,
  );
  const queueSampler = startQueueSampler(options, metrics.registry, new CapacityStore(redis, options.redisPrefix), log);
  const workflowBundle = await loadWorkflowBundle(options.workflowBundle, log, tracing.enabled ? 'traced' : 'plain');
  const worker = new SupervisedWorker({
    name: 'control-worker',
    temporalAddress: options.temporalAddress,
    temporalNamespace: options.temporalNamespace,
    reconnectMaxBackoffMs: options.reconnectMaxBackoffMs,
    log,
    workerOptions: () =>
      controlWorkerOptions({
        region: options.region,
        activities,
        workflowBundle,
        maxConcurrentActivities: options.maxConcurrentActivities,
        maxCachedWorkflows: options.maxCachedWorkflows,
        shutdownGraceMs: options.shutdownGraceMs,
        tracing,
      }),
  });
  started.worker = worker;
  // Region health (gateway/region-monitor.ts): this region has a control worker while this one polls.
  const stopBeating = new RegionBeats(redis, options.redisPrefix).start(
    options.region,
    'control',
    `${os.hostname()}:${process.pid}`,
    () => worker.running,
    (err) => log.debug({ err }, 'region beat failed'),
  );
  const failover = startFailover(options, redis, log, (region) =>
    controlWorkerOptions({ region, activities, workflowBundle, shutdownGraceMs: options.shutdownGraceMs, tracing }),
  );
  const autoscaling = options.autoscaler ? ensureAutoscaler(options, log) : undefined;
  onShutdownSignal(log, async () => {
    await autoscaling?.stop();
    await stopBeating();
    await failover?.stop();
    await worker.stop();
    await images.replicator?.stop();
    await queueSampler?.stop();
    prefixAgreement.stop();
    await closeServer(health);
    await redis.quit().catch(() => redis.disconnect());
    await tracing.shutdown();
  });
  await worker.start();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    // A TypeError is a configuration mistake: its message names the variable, a stack trace would only hide it.
    const detail =
      err instanceof TypeError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`control-worker failed to start: ${detail}\n`);
    process.exit(1);
  });
}
