// A GPU worker: runs the `runInference` activity for one GPU fleet (ATELIER_GPU_TYPE) on `<region>.gpu-<type>`,
// with the backends ATELIER_INFERENCE_BACKENDS names, in order of preference. Each model goes to the first backend
// that serves it (see `createInferenceBackends`): by default the ONNX Runtime pipeline for the models in the model
// registry (tiny-sd out of the box; real exports once registered), then the SIMULATED GPU BACKEND for sdxl,
// sdxl-turbo, sd3 and flux.
//
//   ATELIER_GPU_TYPE=a10g node dist/workers/gpu-worker.js [--help]
import type { WorkerOptions } from '@temporalio/worker';
import os from 'node:os';
import path from 'node:path';
import type { Registry } from 'prom-client';
import { backendsByModel, createInferenceActivities } from '../activities';
import type { InferenceBackend } from '../inference/backend';
import {
  ONNX_BACKEND_OPTION_TABLE,
  createOnnxBackend,
  resolveOnnxBackendOptions,
  type OnnxBackendOptions,
} from '../inference/onnx';
import { SimulatedGpuBackend } from '../inference/simulated';
import { GPU_TYPES, gpuTaskQueue, isGpuType, type GpuType } from '../core/gpu';
import { MODEL_NAMES } from '../core/models';
import { RedisEventLog } from '../runtime/event-log';
import { createLogger, type Logger } from '../runtime/logger';
import { FsObjectStore } from '../runtime/object-store';
import { withInjectedLatency } from '../runtime/delayed-object-store';
import { ModelBreakers } from '../runtime/model-breakers';
import { formatOptionHelp, parse, resolveOptions, type OptionTable } from '../runtime/options';
import { PrefixAgreement } from '../runtime/prefix-agreement';
import { startTracing, type Tracing } from '../runtime/tracing';
import { createRedis, type Redis } from '../runtime/redis';
import { registerGpuWorkerMetrics } from './gpu-metrics';
import { setUpWorkerMetrics } from './worker-metrics';
import {
  COMMON_WORKER_OPTIONS,
  SupervisedWorker,
  closeServer,
  handleHelpFlag,
  onShutdownSignal,
  startHealthServer,
  type CommonWorkerOptions,
} from './worker-runtime';
import { tracingWorkerOptions } from './worker-tracing';

/** `onnx`: ONNX Runtime pipeline for the models in the registry. `simulated`: the SIMULATED GPU BACKEND. */
export type InferenceBackendKind = 'onnx' | 'simulated';
export const INFERENCE_BACKEND_KINDS: readonly InferenceBackendKind[] = ['onnx', 'simulated'];

export interface GpuWorkerOptions extends CommonWorkerOptions {
  /** The GPU fleet this worker belongs to; required. @default none */
  readonly gpuType: GpuType | undefined;
  /** Inference backends in order of preference; a model goes to the first that serves it. @default ['onnx', 'simulated'] */
  readonly backends: readonly InferenceBackendKind[];
  /**
   * Inference requests the worker takes from its task queue at once. 0 means: enough to fill the ONNX backend's
   * batches (maxBatchSize x threads) when it is enabled, else 1. The simulated GPU backend queues the requests it
   * holds and runs one at a time, as one GPU would. @default 0 (auto)
   */
  readonly slots: number;
  /** Divides the simulated GPU backend's modelled latency (tests and demos use 10-1000). @default 1 */
  readonly simSpeedup: number;
  /** Names this worker in results and logs. @default '<hostname>:<pid>:<gpuType>' */
  readonly workerId: string;
  /**
   * Longest gap between two heartbeats the SDK sends to Temporal, ms. A cancelled request is noticed at the next
   * heartbeat that reaches the server, so this bounds how long a cancelled job keeps the GPU. @default 1000
   */
  readonly heartbeatThrottleMs: number;
}

const parseGpuType = (raw: string, env: string): GpuType => {
  if (!isGpuType(raw)) throw new TypeError(`${env}=${JSON.stringify(raw)}: expected one of ${GPU_TYPES.join(', ')}`);
  return raw;
};

function parseBackendKinds(raw: string, env: string): InferenceBackendKind[] {
  const kinds = parse.list(raw).map((k) => k.toLowerCase());
  for (const kind of kinds) {
    if (!(INFERENCE_BACKEND_KINDS as readonly string[]).includes(kind)) {
      throw new TypeError(
        `${env}=${JSON.stringify(raw)}: unknown backend ${JSON.stringify(kind)}; use ${INFERENCE_BACKEND_KINDS.join(', ')}`,
      );
    }
  }
  if (kinds.length === 0) throw new TypeError(`${env} is empty; e.g. "onnx,simulated"`);
  return [...new Set(kinds)] as InferenceBackendKind[];
}

export const GPU_WORKER_OPTIONS: OptionTable<GpuWorkerOptions> = {
  ...COMMON_WORKER_OPTIONS,
  gpuType: {
    env: 'ATELIER_GPU_TYPE',
    doc: `GPU fleet of this worker, required (${GPU_TYPES.join(', ')})`,
    default: undefined,
    parse: parseGpuType,
  },
  backends: {
    env: 'ATELIER_INFERENCE_BACKENDS',
    doc: `Inference backends in order of preference (${INFERENCE_BACKEND_KINDS.join(', ')})`,
    default: ['onnx', 'simulated'],
    parse: parseBackendKinds,
  },
  slots: {
    env: 'ATELIER_GPU_SLOTS',
    doc: 'Inference requests taken at once (0 = ONNX maxBatchSize x threads when onnx is enabled, else 1)',
    default: 0,
    parse: parse.int(0, 1024),
  },
  simSpeedup: {
    env: 'ATELIER_SIM_SPEEDUP',
    doc: 'Divides the simulated GPU backend latency (1 = modelled GPU time)',
    default: 1,
    parse: parse.number(0.001, 1_000_000),
  },
  workerId: {
    env: 'ATELIER_WORKER_ID',
    doc: 'Worker id in results and logs (empty = <hostname>:<pid>:<gpuType>)',
    default: '',
    parse: parse.string,
  },
  heartbeatThrottleMs: {
    env: 'ATELIER_HEARTBEAT_THROTTLE_MS',
    doc: 'Longest gap between heartbeats sent to Temporal (bounds cancel latency), ms',
    default: 1000,
    parse: parse.int(100, 24_000),
  },
};

export type ResolvedGpuWorkerOptions = GpuWorkerOptions & {
  gpuType: GpuType;
  workerId: string;
  /** Options of the ONNX backend (ATELIER_ONNX_*, ATELIER_MODEL_*), when `backends` includes it. */
  onnx: OnnxBackendOptions | undefined;
};

/**
 * Resolves and validates the options once: throws a TypeError naming the variable when the GPU type is missing or
 * any value (the ONNX backend's included) is invalid, and settles `slots` when it is 0 (auto).
 */
export function resolveGpuWorkerOptions(env: NodeJS.ProcessEnv = process.env): ResolvedGpuWorkerOptions {
  const options = resolveOptions(GPU_WORKER_OPTIONS, env);
  const gpuType = options.gpuType;
  if (gpuType === undefined) throw new TypeError(`ATELIER_GPU_TYPE is required: one of ${GPU_TYPES.join(', ')}`);
  const onnx = options.backends.includes('onnx') ? resolveOnnxBackendOptions({}, env) : undefined;
  // Batching only happens between requests the worker holds at once: take enough to fill every thread's batch.
  const slots = options.slots > 0 ? options.slots : onnx ? onnx.maxBatchSize * onnx.threads : 1;
  return {
    ...options,
    gpuType,
    slots,
    onnx,
    workerId: options.workerId || `${os.hostname()}:${process.pid}:${gpuType}`,
  };
}

/**
 * The inference backends of this worker, in order of preference; a model is served by the first one that supports
 * it (`backendsByModel`). The ONNX backend reads its registry and starts its inference threads here, so a bad
 * registry or execution provider stops the worker at start-up instead of failing requests.
 */
export async function createInferenceBackends(
  options: Pick<ResolvedGpuWorkerOptions, 'backends' | 'simSpeedup' | 'gpuType' | 'onnx'>,
  log: Logger,
): Promise<InferenceBackend[]> {
  const backends: InferenceBackend[] = [];
  try {
    for (const kind of options.backends) {
      if (kind === 'simulated')
        backends.push(new SimulatedGpuBackend({ gpuType: options.gpuType, speedup: options.simSpeedup }));
      else backends.push(await createOnnxBackend({ ...options.onnx, logger: log.child({ backend: 'onnx' }) }));
    }
  } catch (err) {
    await Promise.all(backends.map((b) => b.close()));
    throw err;
  }
  return backends;
}

/** Worker options of a GPU worker, shared by the entry point and the workflow tests. */
export function gpuWorkerOptions(args: {
  region: string;
  gpuType: GpuType;
  activities: ReturnType<typeof createInferenceActivities>;
  slots?: number;
  heartbeatThrottleMs?: number;
  shutdownGraceMs?: number;
  /** The process's tracing (runtime/tracing.ts); off when absent. */
  tracing?: Pick<Tracing, 'spanProcessor' | 'resource'>;
}): Omit<WorkerOptions, 'connection' | 'namespace'> {
  return {
    ...tracingWorkerOptions(args.tracing),
    taskQueue: gpuTaskQueue(args.region, args.gpuType),
    activities: args.activities,
    maxConcurrentActivityTaskExecutions: args.slots ?? 1,
    // Without this the SDK would hold heartbeats back for 80% of the 30 s heartbeat timeout (24 s), and a cancel
    // would reach the GPU that late.
    maxHeartbeatThrottleInterval: args.heartbeatThrottleMs ?? 1000,
    shutdownGraceTime: args.shutdownGraceMs ?? 25_000,
  };
}

/**
 * The worker's backends and the inference activity over them, writing to the object store and event log, with the
 * GPU worker's metrics registered over both.
 */
async function createGpuActivities(
  options: ResolvedGpuWorkerOptions,
  redis: Redis,
  registry: Registry,
  log: Logger,
): Promise<{ backends: InferenceBackend[]; activities: ReturnType<typeof createInferenceActivities> }> {
  const backends = await createInferenceBackends(options, log);
  const { gpuType, onnx } = options;
  const { onInferenceTimed } = registerGpuWorkerMetrics(registry, { gpuType, backends, onnx, log });
  const byModel = backendsByModel(backends, MODEL_NAMES);
  const models = Object.fromEntries([...byModel].map(([model, backend]) => [model, backend.name]));
  log.info({ models, slots: options.slots }, 'inference backends');
  const breakers = new ModelBreakers(redis, options.redisPrefix, log);
  const activities = createInferenceActivities({
    backends: byModel,
    store: withInjectedLatency(new FsObjectStore(path.resolve(options.storageDir)), options.chaosStorageLatencyMs),
    eventLog: new RedisEventLog(redis, { prefix: options.redisPrefix }),
    workerId: options.workerId,
    onInferenceTimed,
    onModelOutcome: ({ model, ok }) => breakers.report(model, ok),
  });
  return { backends, activities };
}

async function main(): Promise<void> {
  handleHelpFlag(
    `${formatOptionHelp('gpu-worker: runs the runInference activity for one GPU fleet.', GPU_WORKER_OPTIONS)}\n` +
      formatOptionHelp('ONNX backend (when ATELIER_INFERENCE_BACKENDS includes onnx):', ONNX_BACKEND_OPTION_TABLE),
  );
  const options = resolveGpuWorkerOptions();
  const tracing = startTracing(`atelier-gpu-worker-${options.gpuType}`);
  const log = createLogger(
    'gpu-worker',
    { region: options.region, gpuType: options.gpuType, workerId: options.workerId },
    options.logLevel,
  );
  const metrics = await setUpWorkerMetrics('gpu-worker', options, log);

  const redis = createRedis(options.redisUrl, `gpu-worker:${options.gpuType}`, options.redisCommandTimeoutMs);
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  const { backends, activities } = await createGpuActivities(options, redis, metrics.registry, log);
  const prefixAgreement = new PrefixAgreement({ redis, prefix: options.redisPrefix, role: 'gpu-worker', log });
  prefixAgreement.start();
  const supervised = new SupervisedWorker({
    name: `gpu-worker[${options.gpuType}]`,
    temporalAddress: options.temporalAddress,
    temporalNamespace: options.temporalNamespace,
    reconnectMaxBackoffMs: options.reconnectMaxBackoffMs,
    log,
    workerOptions: () =>
      gpuWorkerOptions({
        region: options.region,
        gpuType: options.gpuType,
        activities,
        slots: options.slots,
        heartbeatThrottleMs: options.heartbeatThrottleMs,
        shutdownGraceMs: options.shutdownGraceMs,
        tracing,
      }),
  });
  const health = await startHealthServer(
    options.healthHost,
    options.healthPort,
    () => {
      const statuses = backends.map((b) => b.status());
      return {
        ready: supervised.running && redis.status === 'ready' && statuses.every((s) => s.ready),
        worker: supervised.describe(),
        gpuType: options.gpuType,
        redis: redis.status,
        redisPrefix: prefixAgreement.status,
        backends: statuses,
      };
    },
    log,
    metrics.endpoint,
  );
  onShutdownSignal(log, async () => {
    // Drain first: in-flight jobs finish (or are handed back) before their backends go away.
    await supervised.stop();
    await Promise.all(backends.map((b) => b.close()));
    prefixAgreement.stop();
    await closeServer(health);
    await redis.quit().catch(() => redis.disconnect());
    await tracing.shutdown();
  });
  await supervised.start();
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
