// A GPU worker's own metrics, from its inference backends' telemetry (inference/telemetry.ts) and the inference
// activity's timings: time in the backend per request, images per pass, how busy each backend kept its GPU, model
// files that failed their checksum, and device memory. Memory comes from the driver (nvidia-smi) when the ONNX backend
// runs on CUDA or TensorRT, from the simulated GPU's model (inference/simulated-memory.ts) otherwise, and is absent
// (not registered) where neither has a figure, as on a CPU-only ONNX worker: no number is ever made up.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Registry } from 'prom-client';
import type { InferenceTiming } from '../activities/inference';
import type { GpuType } from '../core/gpu';
import { MODEL_NAMES } from '../core/models';
import type { InferenceBackend } from '../inference/backend';
import type { DeviceMemory } from '../inference/telemetry';
import type { Logger } from '../runtime/logger';
import { atelierCounter, atelierGauge, atelierHistogram } from '../runtime/metrics';

/** From a 1-step turbo image on an H100 (tens of ms) to a 4096x4096 flux batch on an A10G (minutes). */
const INFERENCE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600];
/** Images per pass: 1 to the 8 a request may ask for, and what dynamic batching reaches beyond. */
const BATCH_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32];
/** How long a reading of nvidia-smi is reused between scrapes, ms. */
const DEVICE_SAMPLE_TTL_MS = 5_000;

export interface GpuMetricsArgs {
  readonly gpuType: GpuType;
  readonly backends: readonly InferenceBackend[];
  /** The ONNX backend's execution providers and device ids, when it is enabled. */
  readonly onnx: { readonly executionProviders: readonly string[]; readonly deviceIds: readonly number[] } | undefined;
  readonly log: Logger;
}

/** Registers the GPU worker's metrics; returns what the inference activity reports its timings to. */
export function registerGpuWorkerMetrics(
  registry: Registry,
  args: GpuMetricsArgs,
): { onInferenceTimed: (sample: InferenceTiming) => void } {
  const { gpuType, backends } = args;
  const inference = atelierHistogram(registry, {
    name: 'atelier_inference_seconds',
    help: 'Time in the inference backend for one request it completed (queue in the backend included), seconds',
    labelNames: ['model', 'gpu_type', 'backend'],
    buckets: INFERENCE_BUCKETS,
  });
  const batch = atelierHistogram(registry, {
    name: 'atelier_batch_size',
    help: 'Images per pass: an ONNX batch, or one job of the simulated GPU',
    // gpu_type too, so that fleets compare without joining on the target.
    labelNames: ['model', 'gpu_type', 'backend'],
    buckets: BATCH_BUCKETS,
  });
  for (const backend of backends) {
    backend.telemetry?.onPass((pass) =>
      batch.observe({ model: pass.model, gpu_type: gpuType, backend: backend.name }, pass.images),
    );
  }
  atelierGauge(registry, {
    name: 'atelier_gpu_duty_cycle',
    help: 'Fraction of the last 60 s during which the backend computed, mean over its lanes (threads or GPU)',
    labelNames: ['gpu_type', 'backend'],
    collect() {
      for (const b of backends)
        if (b.telemetry) this.set({ gpu_type: gpuType, backend: b.name }, b.telemetry.busyFraction());
    },
  });
  registerCorruptions(registry, backends);
  registerDeviceMemory(registry, args);
  return {
    onInferenceTimed: (s) => inference.observe({ model: s.model, gpu_type: s.gpuType, backend: s.backend }, s.seconds),
  };
}

/** The backends' checksum-failure totals as a counter; every model a counting backend serves starts at 0. */
function registerCorruptions(registry: Registry, backends: readonly InferenceBackend[]): void {
  const counting = backends.filter((b) => b.telemetry?.modelCorruptions);
  const seen = new Map<string, number>();
  const corruptions = atelierCounter(registry, {
    name: 'atelier_model_corruptions_total',
    help: 'Model files that failed their checksum when verified (the worker reloads them from the source)',
    labelNames: ['model'],
    collect() {
      for (const backend of counting) {
        for (const [model, total] of backend.telemetry?.modelCorruptions?.() ?? []) {
          const delta = total - (seen.get(model) ?? 0);
          if (delta > 0) this.inc({ model }, delta);
          seen.set(model, total);
        }
      }
    },
  });
  for (const model of MODEL_NAMES) if (counting.some((b) => b.supports(model))) corruptions.inc({ model }, 0);
}

/** Registers the memory gauges only where there is a figure to report: the driver's, else the simulated GPU's model. */
function registerDeviceMemory(registry: Registry, args: GpuMetricsArgs): void {
  const source = deviceMemorySource(args);
  if (!source) return;
  const { gpuType } = args;
  let reading: Promise<DeviceMemory | undefined> | undefined;
  // Both gauges of one scrape share one reading.
  const read = (): Promise<DeviceMemory | undefined> => (reading ??= source().finally(() => (reading = undefined)));
  const gauge = (name: string, help: string, pick: (m: DeviceMemory) => number): void =>
    void atelierGauge(registry, {
      name,
      help,
      labelNames: ['gpu_type'],
      async collect() {
        const memory = await read();
        this.reset();
        if (memory) this.set({ gpu_type: gpuType }, pick(memory));
      },
    });
  gauge(
    'atelier_gpu_memory_used_bytes',
    'GPU memory in use (nvidia-smi, or modelled by the simulated GPU)',
    (m) => m.usedBytes,
  );
  gauge(
    'atelier_gpu_memory_total_bytes',
    'GPU memory of the device (nvidia-smi, or the GPU type for the simulated GPU)',
    (m) => m.totalBytes,
  );
}

export type MemorySource = () => Promise<DeviceMemory | undefined>;

export function deviceMemorySource(args: GpuMetricsArgs): MemorySource | undefined {
  const onCuda = args.onnx?.executionProviders.some((ep) => ep === 'cuda' || ep === 'tensorrt') ?? false;
  const smi = onCuda ? findOnPath('nvidia-smi') : undefined;
  if (smi) {
    args.log.info({ nvidiaSmi: smi, deviceIds: args.onnx?.deviceIds }, 'GPU memory metrics from nvidia-smi');
    return nvidiaSmiMemory(smi, args.onnx?.deviceIds ?? [0], args.log);
  }
  const modelled = args.backends.find((b) => b.telemetry?.deviceMemory);
  if (modelled) return () => Promise.resolve(modelled.telemetry?.deviceMemory?.());
  return undefined;
}

function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, binary);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Used and total memory summed over the devices this worker's inference threads use, from nvidia-smi (MiB), read at
 * most every 5 s. A failed reading gives no sample rather than a stale or made-up one.
 */
export function nvidiaSmiMemory(binary: string, deviceIds: readonly number[], log: Logger): MemorySource {
  let last: { at: number; memory: DeviceMemory | undefined } | undefined;
  return async () => {
    if (last && performance.now() - last.at < DEVICE_SAMPLE_TTL_MS) return last.memory;
    const args = [
      '--query-gpu=memory.used,memory.total',
      '--format=csv,noheader,nounits',
      `--id=${deviceIds.join(',')}`,
    ];
    const memory = await new Promise<DeviceMemory | undefined>((resolve) =>
      execFile(binary, args, { timeout: 2_000 }, (err, stdout) => {
        if (err) log.warn({ err: err.message }, 'nvidia-smi failed; no GPU memory sample');
        resolve(err ? undefined : parseNvidiaSmiMemory(stdout));
      }),
    );
    last = { at: performance.now(), memory };
    return memory;
  };
}

/** `used, total` in MiB, one line per device, summed; undefined when no line parses. */
export function parseNvidiaSmiMemory(stdout: string): DeviceMemory | undefined {
  let used = 0;
  let total = 0;
  let devices = 0;
  for (const line of stdout.split('\n')) {
    const [u, t] = line.split(',').map((f) => Number(f.trim()));
    if (line.trim() === '' || !Number.isFinite(u) || !Number.isFinite(t)) continue;
    used += (u as number) * 2 ** 20;
    total += (t as number) * 2 ** 20;
    devices++;
  }
  return devices > 0 ? { usedBytes: used, totalBytes: total } : undefined;
}
