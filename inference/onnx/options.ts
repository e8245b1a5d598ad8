// Options of the ONNX backend: one typed object, resolved once from defaults, environment variables and overrides.
// `formatOptionHelp('ONNX backend', ONNX_BACKEND_OPTION_TABLE)` prints the table for a worker's --help.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import type { Logger } from '../../runtime/logger';
import { parse, resolveOptions, type OptionTable } from '../../runtime/options';
import type { ExecutionProviderName } from './thread-protocol';

export interface OnnxBackendEnvOptions {
  /** Model registry manifest. @default the repository's models/registry.json */
  readonly registryPath: string;
  /** Folder of verified model copies, `<cacheDir>/<model>/...`. @default `.atelier/models` (relative to the working directory) */
  readonly cacheDir: string;
  /**
   * onnxruntime execution providers in order of preference: `cpu`, `cuda`, `tensorrt`. CUDA and TensorRT need the GPU
   * build of onnxruntime-node's binaries (README "Running inference on CUDA"). @default ['cpu']
   */
  readonly executionProviders: readonly ExecutionProviderName[];
  /** GPU ordinals; inference thread i uses deviceIds[i % length]. @default [0] */
  readonly deviceIds: readonly number[];
  /** Inference threads, each running one pass at a time with its own sessions (one per GPU is the usual). @default 1 */
  readonly threads: number;
  /** onnxruntime intra-op threads per session; 0 lets onnxruntime use one per physical core. @default 0 */
  readonly intraOpNumThreads: number;
  /**
   * Let idle intra-op threads spin-wait between kernels: worth it only on CPU cores dedicated to onnxruntime; in a
   * shared worker it slows the pass (session-options.ts). @default false
   */
  readonly intraOpSpinning: boolean;
  /** Most images in one pass, per model (a registry entry's maxBatchSize can lower it). @default 8 */
  readonly maxBatchSize: number;
  /** How long the first image of a batch waits for compatible requests, milliseconds. @default 10 */
  readonly maxQueueDelayMs: number;
  /** After an out-of-memory halving, successful passes before the model's batch cap doubles back. @default 100 */
  readonly oomRecoveryPasses: number;
  /**
   * Threads that turn finished images into PNGs, so inference threads move on to the next pass; 0 sizes the pool from
   * the cores (defaultPngThreads). @default 0
   */
  readonly pngThreads: number;
  /** Models verified and loaded at start-up; status().ready waits for them. @default [] */
  readonly preload: readonly string[];
}

export interface OnnxBackendOptions extends OnnxBackendEnvOptions {
  readonly logger?: Logger;
  /**
   * Fault injection for tests and chaos runs: a UNet run with more images than this fails with an onnxruntime-style
   * out-of-memory error (0: every run fails). @default undefined (off)
   */
  readonly injectOomAboveMembers?: number;
}

const EXECUTION_PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'cuda', 'tensorrt'];

/** models/registry.json from the source tree (inference/onnx) or from the build (dist/inference/onnx). */
export function defaultRegistryPath(): string {
  const candidates = [
    resolve(__dirname, '../../models/registry.json'),
    resolve(__dirname, '../../../models/registry.json'),
  ];
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

function executionProviderList(raw: string, env: string): ExecutionProviderName[] {
  const names = parse.list(raw).map((s) => s.toLowerCase());
  for (const name of names) {
    if (!(EXECUTION_PROVIDERS as readonly string[]).includes(name)) {
      throw new TypeError(
        `${env}=${JSON.stringify(raw)}: unknown execution provider ${JSON.stringify(name)}; use ${EXECUTION_PROVIDERS.join(', ')}`,
      );
    }
  }
  if (names.length === 0) throw new TypeError(`${env} is empty; e.g. "cuda,cpu"`);
  return names as ExecutionProviderName[];
}

function intList(min: number, max: number) {
  return (raw: string, env: string): number[] => parse.list(raw).map((item) => parse.int(min, max)(item, env));
}

export const ONNX_BACKEND_OPTION_TABLE: OptionTable<OnnxBackendEnvOptions> = {
  registryPath: {
    env: 'ATELIER_MODEL_REGISTRY',
    doc: 'Model registry manifest (JSON)',
    default: defaultRegistryPath(),
    parse: parse.string,
  },
  cacheDir: {
    env: 'ATELIER_MODEL_CACHE_DIR',
    doc: 'Folder of verified model copies',
    default: '.atelier/models',
    parse: parse.string,
  },
  executionProviders: {
    env: 'ATELIER_ONNX_EXECUTION_PROVIDERS',
    doc: 'onnxruntime execution providers in order, e.g. cuda,cpu or tensorrt,cuda,cpu',
    default: ['cpu'],
    parse: executionProviderList,
  },
  deviceIds: {
    env: 'ATELIER_ONNX_DEVICE_IDS',
    doc: 'GPU ordinals for the inference threads, e.g. 0,1',
    default: [0],
    parse: intList(0, 63),
  },
  threads: {
    env: 'ATELIER_ONNX_THREADS',
    doc: 'Inference threads (passes run at once)',
    default: 1,
    parse: parse.int(1, 64),
  },
  intraOpNumThreads: {
    env: 'ATELIER_ONNX_INTRA_OP_THREADS',
    doc: 'onnxruntime intra-op threads per session (0 = auto)',
    default: 0,
    parse: parse.int(0, 256),
  },
  intraOpSpinning: {
    env: 'ATELIER_ONNX_INTRA_OP_SPINNING',
    doc: 'Idle intra-op threads spin-wait (only for cores dedicated to onnxruntime)',
    default: false,
    parse: parse.bool,
  },
  maxBatchSize: {
    env: 'ATELIER_ONNX_MAX_BATCH_SIZE',
    doc: 'Most images per batched pass',
    default: 8,
    parse: parse.int(1, 256),
  },
  maxQueueDelayMs: {
    env: 'ATELIER_ONNX_MAX_QUEUE_DELAY_MS',
    doc: 'Batching window for the first image, ms',
    default: 10,
    parse: parse.int(0, 10_000),
  },
  oomRecoveryPasses: {
    env: 'ATELIER_ONNX_OOM_RECOVERY_PASSES',
    doc: 'Successful passes before an OOM-halved batch cap doubles back',
    default: 100,
    parse: parse.int(1, 1_000_000),
  },
  pngThreads: {
    env: 'ATELIER_ONNX_PNG_THREADS',
    doc: 'PNG encoder threads (0 = one per 4 cores, 1 to 4)',
    default: 0,
    parse: parse.int(0, 64),
  },
  preload: {
    env: 'ATELIER_ONNX_PRELOAD',
    doc: 'Models to load at start-up, e.g. tiny-sd',
    default: [],
    parse: parse.list,
  },
};

/**
 * PNG encoder threads for `cores` CPUs: one per four cores, at least 1 and at most 4. A 512x512 image takes about
 * 10 ms on one core, so 4 threads keep up with several hundred images a second (an H200 makes about 75 of SD-Turbo's)
 * while leaving most cores to onnxruntime, the event loop and the OS.
 */
export function defaultPngThreads(cores: number = availableParallelism()): number {
  return Math.min(4, Math.max(1, Math.floor(cores / 4)));
}

/** Resolves the options (defaults, then environment, then `overrides`) and validates combinations. */
export function resolveOnnxBackendOptions(
  overrides: Partial<OnnxBackendOptions> = {},
  env: NodeJS.ProcessEnv = process.env,
): OnnxBackendOptions {
  const merged: OnnxBackendOptions = { ...resolveOptions(ONNX_BACKEND_OPTION_TABLE, env, overrides), ...overrides };
  const resolved = merged.pngThreads === 0 ? { ...merged, pngThreads: defaultPngThreads() } : merged;
  if (resolved.deviceIds.length === 0) throw new TypeError('deviceIds must name at least one device');
  if (
    resolved.injectOomAboveMembers !== undefined &&
    !(Number.isInteger(resolved.injectOomAboveMembers) && resolved.injectOomAboveMembers >= 0)
  ) {
    throw new TypeError('injectOomAboveMembers must be a non-negative integer');
  }
  for (const ep of resolved.executionProviders) {
    if (!EXECUTION_PROVIDERS.includes(ep)) throw new TypeError(`unknown execution provider ${JSON.stringify(ep)}`);
  }
  return resolved;
}
