// A GPU worker: runs the `runInference` activity for one GPU fleet (ATELIER_GPU_TYPE) on `<region>.gpu-<type>`,
// with the backends ATELIER_INFERENCE_BACKENDS names, in order of preference. Each model goes to the first backend
// that serves it (see `createInferenceBackends`): by default the ONNX Runtime pipeline for the models in the model
// registry (tiny-sd out of the box; real exports once registered), then the SIMULATED GPU BACKEND for sdxl,
// sdxl-turbo, sd3 and flux.
//
//   ATELIER_GPU_TYPE=a10g node dist/workers/gpu-worker.js [--help]
import type { WorkerOptions } from '@temporalio/worker';
import path from 'node:path';
import type { Registry } from 'prom-client';
import { backendsByModel, createInferenceActivities } from '../activities';
import type { InferenceBackend } from '../inference/backend';
import { ONNX_BACKEND_OPTION_TABLE, createOnnxBackend } from '../inference/onnx';
import { SimulatedGpuBackend } from '../inference/simulated';
import { gpuTaskQueue, relaxTaskQueue, type GpuType } from '../core/gpu';
import { MODEL_NAMES } from '../core/models';
import { RedisEventLog } from '../runtime/event-log';
import { withQueueLeaving } from '../runtime/queue-positions';
import { createLogger, type Logger } from '../runtime/logger';
import { FsObjectStore } from '../runtime/object-store';
import { withInjectedLatency } from '../runtime/delayed-object-store';
import { formatOptionHelp } from '../runtime/options';
import { PrefixAgreement } from '../runtime/prefix-agreement';
import { startTracing, type Tracing } from '../runtime/tracing';
import { createRedis, type RedisClient } from '../runtime/redis';
import type { InferenceOutcome } from '../activities/inference';
import { deviceMemorySource, registerGpuWorkerMetrics } from './gpu-metrics';
import { createMembership, type Membership } from './gpu-membership';
import { setUpWorkerMetrics } from './worker-metrics';
import { SupervisedWorker, closeServer, handleHelpFlag, onShutdownSignal, startHealthServer } from './worker-runtime';
import { tracingWorkerOptions } from './worker-tracing';
import { defaultRelaxSlots, RelaxLane } from './relax-lane';
import { GPU_WORKER_OPTIONS, resolveGpuWorkerOptions, type ResolvedGpuWorkerOptions } from './gpu-worker-options';

export {
  GPU_WORKER_OPTIONS,
  INFERENCE_BACKEND_KINDS,
  resolveGpuWorkerOptions,
  type GpuWorkerOptions,
  type InferenceBackendKind,
  type ResolvedGpuWorkerOptions,
} from './gpu-worker-options';

/**
 * The inference backends of this worker, in order of preference; a model is served by the first one that supports
 * it (`backendsByModel`). The ONNX backend reads its registry and starts its inference threads here, so a bad
 * registry or execution provider stops the worker at start-up instead of failing requests.
 */
export async function createInferenceBackends(
  options: Pick<ResolvedGpuWorkerOptions, 'backends' | 'simSpeedup' | 'gpuType' | 'onnx'> &
    Partial<Pick<ResolvedGpuWorkerOptions, 'chaosModelLoadFailures'>>,
  log: Logger,
): Promise<InferenceBackend[]> {
  const backends: InferenceBackend[] = [];
  try {
    for (const kind of options.backends) {
      if (kind === 'simulated')
        backends.push(
          new SimulatedGpuBackend({
            gpuType: options.gpuType,
            speedup: options.simSpeedup,
            injectModelLoadFailures: options.chaosModelLoadFailures ?? 0,
          }),
        );
      else backends.push(await createOnnxBackend({ ...options.onnx, logger: log.child({ backend: 'onnx' }) }));
    }
  } catch (err) {
    await Promise.all(backends.map((b) => b.close()));
    throw err;
  }
  return backends;
}

/**
 * Worker options of a GPU worker, shared by the entry point and the workflow tests: one Worker on the fleet's queue
 * (turbo and fast, `slots` at a time) and one on its relax lane, whose slots `lane` hands out only while the worker has
 * no interactive work (workers/relax-lane.ts). Run both on one connection (SupervisedWorker does).
 */
export function gpuWorkerOptions(args: {
  region: string;
  gpuType: GpuType;
  activities: ReturnType<typeof createInferenceActivities>;
  slots?: number;
  /** The worker's relax lane (its `whenIdle` also given to the activities); one of its own when absent. */
  lane?: RelaxLane;
  heartbeatThrottleMs?: number;
  shutdownGraceMs?: number;
  /** The process's tracing (runtime/tracing.ts); off when absent. */
  tracing?: Pick<Tracing, 'spanProcessor' | 'resource'>;
}): Omit<WorkerOptions, 'connection' | 'namespace'>[] {
  const slots = args.slots ?? 1;
  const lane = args.lane ?? new RelaxLane({ relaxSlots: defaultRelaxSlots(slots) });
  const traced = tracingWorkerOptions(args.tracing);
  const common = {
    ...traced,
    activities: args.activities,
    // Without this the SDK would hold heartbeats back for 80% of the 30 s heartbeat timeout (24 s), and a cancel
    // would reach the GPU that late.
    maxHeartbeatThrottleInterval: args.heartbeatThrottleMs ?? 1000,
    shutdownGraceTime: args.shutdownGraceMs ?? 25_000,
  };
  return [
    {
      ...common,
      taskQueue: gpuTaskQueue(args.region, args.gpuType),
      maxConcurrentActivityTaskExecutions: slots,
      interceptors: {
        ...traced.interceptors,
        activity: [...(traced.interceptors?.activity ?? []), ...lane.interactiveInterceptors()],
      },
    },
    {
      ...common,
      taskQueue: relaxTaskQueue(args.region, args.gpuType),
      tuner: {
        activityTaskSlotSupplier: lane.slotSupplier(),
        workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
        localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
        nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      },
    },
  ];
}

/**
 * The worker's backends and the inference activity over them, writing to the object store and event log, with the
 * GPU worker's metrics registered over both. Each run's outcome goes to `onOutcome` (the fleet membership's rules).
 */
async function createGpuActivities(
  options: ResolvedGpuWorkerOptions,
  redis: RedisClient,
  registry: Registry,
  log: Logger,
  hooks: { onOutcome: (outcome: InferenceOutcome) => void; lane: RelaxLane },
) {
  const backends = await createInferenceBackends(options, log);
  const { gpuType, onnx } = options;
  const { onInferenceTimed } = registerGpuWorkerMetrics(registry, { gpuType, backends, onnx, log });
  const byModel = backendsByModel(backends, MODEL_NAMES);
  const models = Object.fromEntries([...byModel].map(([model, backend]) => [model, backend.name]));
  log.info({ models, slots: options.slots, relaxSlots: options.relaxSlots }, 'inference backends');
  const activities = createInferenceActivities({
    backends: byModel,
    store: withInjectedLatency(new FsObjectStore(path.resolve(options.storageDir)), options.chaosStorageLatencyMs),
    // `generating` takes the request out of its queue's set (its client's queue position).
    eventLog: withQueueLeaving(
      new RedisEventLog(redis, { prefix: options.redisPrefix }),
      redis,
      options.redisPrefix,
      log,
    ),
    region: options.region,
    workerId: options.workerId,
    onInferenceTimed,
    onOutcome: hooks.onOutcome,
    whenIdle: (signal) => hooks.lane.whenIdle(signal),
  });
  return { backends, byModel, activities };
}

async function main(): Promise<void> {
  handleHelpFlag(
    `${formatOptionHelp('gpu-worker: runs the runInference activity for one GPU fleet.', GPU_WORKER_OPTIONS)}\n` +
      formatOptionHelp('ONNX backend (when ATELIER_INFERENCE_BACKENDS includes onnx):', ONNX_BACKEND_OPTION_TABLE),
  );
  const options = resolveGpuWorkerOptions();
  const tracing = startTracing(`atelier-gpu-worker-${options.gpuType}`);
  const { region, gpuType, workerId } = options;
  const log = createLogger('gpu-worker', { region, gpuType, workerId }, options.logLevel);
  const metrics = await setUpWorkerMetrics('gpu-worker', options, log);

  const redis = createRedis(options.redisUrl, `gpu-worker:${gpuType}`, options.redisCommandTimeoutMs);
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  // The membership needs the supervised worker, which needs the activities: outcomes reach it once it exists.
  const outcomes: { to?: Membership } = {};
  const lane = new RelaxLane({ relaxSlots: options.relaxSlots });
  const { backends, byModel, activities } = await createGpuActivities(options, redis, metrics.registry, log, {
    onOutcome: (o) => outcomes.to?.onOutcome(o),
    lane,
  });
  const prefixAgreement = new PrefixAgreement({ redis, prefix: options.redisPrefix, role: 'gpu-worker', log });
  prefixAgreement.start();
  const supervised = new SupervisedWorker({
    name: `gpu-worker[${gpuType}]`,
    temporalAddress: options.temporalAddress,
    temporalNamespace: options.temporalNamespace,
    reconnectMaxBackoffMs: options.reconnectMaxBackoffMs,
    log,
    workerOptions: () =>
      gpuWorkerOptions({
        region,
        gpuType,
        activities,
        slots: options.slots,
        lane,
        heartbeatThrottleMs: options.heartbeatThrottleMs,
        shutdownGraceMs: options.shutdownGraceMs,
        tracing,
      }),
  });
  const shutdown = onShutdownSignal(log, async () => {
    outcomes.to?.markDraining();
    // Drain first: in-flight jobs finish (or are handed back) before their backends go away.
    await supervised.stop();
    lane.close();
    await outcomes.to?.stop();
    await Promise.all(backends.map((b) => b.close()));
    prefixAgreement.stop();
    await closeServer(health);
    await redis.quit().catch(() => redis.disconnect());
    await tracing.shutdown();
  });
  const membership = createMembership({
    identity: { workerId, region, gpuType },
    supervised,
    backends,
    byModel,
    redis,
    redisPrefix: options.redisPrefix,
    ...deviceMemory(options, backends, log),
    registry: metrics.registry,
    log,
    shutdown,
    intervalMs: options.healthIntervalMs,
    temporal: { address: options.temporalAddress },
  });
  outcomes.to = membership;
  const readiness = membership.readiness;
  const health = await startHealthServer(
    options.healthHost,
    options.healthPort,
    () => ({
      ...readiness(),
      worker: supervised.describe(),
      relaxLane: lane.stats(),
      gpuType,
      redis: redis.status,
      redisPrefix: prefixAgreement.status,
      backends: backends.map((b) => b.status()),
    }),
    log,
    metrics.endpoint,
    membership.liveness,
  );
  // Orders in force (a paused fleet) apply before the first poll.
  await membership.start();
  await supervised.start();
}

/** Where the device's memory figure comes from, and what names the device across restarts. */
function deviceMemory(options: ResolvedGpuWorkerOptions, backends: readonly InferenceBackend[], log: Logger) {
  const onCuda = options.onnx?.executionProviders.some((ep) => ep === 'cuda' || ep === 'tensorrt') ?? false;
  return {
    memory: deviceMemorySource({ gpuType: options.gpuType, backends, onnx: options.onnx, log }),
    onCuda,
    deviceKey: (options.onnx?.deviceIds ?? [0]).join(','),
  };
}

if (require.main === module) {
  main().catch((err: unknown) => {
    // A TypeError is a configuration mistake: its message names the variable, a stack trace would only hide it.
    const detail =
      err instanceof TypeError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`gpu-worker failed to start: ${detail}\n`);
    process.exit(1);
  });
}
