// The GPU worker's options: the environment table (`--help` prints it, the README lists it) and their resolution,
// with the ONNX backend's own options when that backend is enabled.
import os from 'node:os';
import { GPU_TYPES, isGpuType, type GpuType } from '../core/gpu';
import { resolveOnnxBackendOptions, type OnnxBackendOptions } from '../inference/onnx';
import { parse, resolveOptions, type OptionTable } from '../runtime/options';
import { COMMON_WORKER_OPTIONS, type CommonWorkerOptions } from './worker-runtime';
import { defaultRelaxSlots } from './relax-lane';

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
  /**
   * Relax requests the worker holds at once, from its fleet's relax lane, taken only while it has no turbo or fast work
   * (workers/relax-lane.ts). 0 means 95% of `slots`, at least 1. @default 0 (auto)
   */
  readonly relaxSlots: number;
  /** Divides the simulated GPU backend's modelled latency (tests and demos use 10-1000). @default 1 */
  readonly simSpeedup: number;
  /** Names this worker in results and logs. @default '<hostname>:<pid>:<gpuType>' */
  readonly workerId: string;
  /**
   * Longest gap between two heartbeats the SDK sends to Temporal, ms. A cancelled request is noticed at the next
   * heartbeat that reaches the server, so this bounds how long a cancelled job keeps the GPU. @default 1000
   */
  readonly heartbeatThrottleMs: number;
  /**
   * Period of the health probes and of the worker's announcement in the fleet registry (seed 001: 10 s); three failed
   * probes in a row take the worker out of its task queue. @default 10000
   */
  readonly healthIntervalMs: number;
  /**
   * Fault injection for chaos runs: the first N loads of each model on the simulated GPU fail checksum verification
   * (ModelCorrupted). @default 0 (off)
   */
  readonly chaosModelLoadFailures: number;
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
  relaxSlots: {
    env: 'ATELIER_RELAX_SLOTS',
    doc: 'Relax requests taken at once from the relax lane, only while no turbo or fast work is in hand (0 = 95% of slots, at least 1)',
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
  healthIntervalMs: {
    env: 'ATELIER_HEALTH_INTERVAL_MS',
    doc: 'Period of the health probes and fleet-registry announcements (3 failed probes in a row = unhealthy), ms',
    default: 10_000,
    parse: parse.int(100, 10_000),
  },
  chaosModelLoadFailures: {
    env: 'ATELIER_CHAOS_MODEL_LOAD_FAILURES',
    doc: 'Chaos: the first N loads of each model on the simulated GPU fail verification (0 = off)',
    default: 0,
    parse: parse.int(0, 1000),
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
 * any value (the ONNX backend's included) is invalid, and settles `slots` and `relaxSlots` when 0 (auto).
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
    relaxSlots: options.relaxSlots > 0 ? options.relaxSlots : defaultRelaxSlots(slots),
    onnx,
    workerId: options.workerId || `${os.hostname()}:${process.pid}:${gpuType}`,
  };
}
