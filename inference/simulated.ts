// The SIMULATED GPU BACKEND: stands in for a diffusion pipeline on a GPU fleet we do not have here. It takes as
// long as the modelled GPU would (from the GPU's FP16 throughput and the model's work per step), reports every
// step, stops within one step when cancelled, and returns real PNGs of the requested size whose pixels are a
// deterministic function of the seed and prompt (smooth gradients and soft shapes), so that the same request
// always yields the same bytes, as a real pipeline with a fixed seed does. Like one GPU holding one pipeline, it
// runs one job at a time: a worker may hold several requests (its slots), and they queue here, taking the GPU by
// Temporal priority, then arrival, so throughput under load is what the modelled GPU would give and a tier's priority
// holds inside the worker as it does in the task queue. The images are drawn and encoded in worker threads
// (simulated-render-pool.ts): a 4096x4096 batch takes tens of seconds of CPU, and on the worker's main thread that
// would stall heartbeats past Temporal's timeout. Load tests, chaos tests and the local stack run on it; real
// inference is the ONNX backend (inference/onnx).
import { setTimeout as sleep } from 'node:timers/promises';
import { modelledStepMs } from '../core/estimate';
import type { GpuType } from '../core/gpu';
import { MODELS, type ModelName } from '../core/models';
import {
  epochMs,
  InferenceError,
  type BackendStatus,
  type GeneratedImage,
  type InferenceBackend,
  type InferenceHooks,
  type InferenceJob,
} from './backend';
import { BACKGROUND_PRIORITY, DEFAULT_PRIORITY_KEY, PriorityGate, type GpuHold } from './gpu-gate';
import { SimulatedGpuMemory } from './simulated-memory';
import { SimulatedRenderPool } from './simulated-render-pool';
import { WorkRecorder, type BackendTelemetry, type DeviceMemory } from './telemetry';

export { renderSimulatedImage } from './simulated-image';
// The latency model (before the speed-up) is core's, so the gateway's estimates and this backend agree.
export { modelledStepMs } from '../core/estimate';

export const SIMULATED_MODELS: readonly ModelName[] = ['sdxl', 'sdxl-turbo', 'sd3', 'flux'];

export interface SimulatedGpuBackendOptions {
  /** The GPU this worker stands in for; its FP16 throughput sets the latency. */
  readonly gpuType: GpuType;
  /** Divides every modelled latency (tests use 1000 or more). Env ATELIER_SIM_SPEEDUP. @default 1 */
  readonly speedup?: number;
  /**
   * Fraction of the GPU's peak FP16 throughput that a diffusion step sustains (memory-bound attention, kernel
   * launch gaps). @default 0.35
   */
  readonly utilization?: number;
  /**
   * Worker threads that draw and encode the PNGs; the images of one request are shared among them. One by default:
   * the backend stands for one GPU, and the worker process has other work for the remaining cores. @default 1
   */
  readonly renderThreads?: number;
  /**
   * Fault injection for chaos runs (model_load_failure): the first N loads of each model on this backend fail
   * checksum verification (InferenceError ModelCorrupted), as a corrupted copy in the model registry would. A model is
   * loaded at its first request and again by reloadModel. @default 0 (off)
   */
  readonly injectModelLoadFailures?: number;
}

export class SimulatedGpuBackend implements InferenceBackend {
  readonly name = 'simulated';
  readonly gpuType: GpuType;
  private readonly speedup: number;
  private readonly utilization: number;
  /** Models loaded (verified) on the simulated GPU. */
  private readonly loaded = new Set<ModelName>();
  /** Injected load failures left, per model. */
  private readonly loadFailuresLeft = new Map<ModelName, number>();
  private readonly injectedLoadFailures: number;
  /**
   * `active`: jobs on the simulated GPU (several when a job paused for one of higher priority); `queued`: jobs waiting
   * for it; `yielded`: times a job handed the device over between steps.
   */
  private readonly counters = { jobs: 0, images: 0, steps: 0, cancelled: 0, active: 0, queued: 0, yielded: 0 };
  /** The modelled GPU: one job at a time, by priority then arrival. */
  private readonly gpu = new PriorityGate();
  private readonly renderer: SimulatedRenderPool;
  private closed = false;
  /** One lane: the modelled GPU, busy while a job holds it (its steps and its images' rendering). */
  private readonly work = new WorkRecorder(1);
  private readonly memory: SimulatedGpuMemory;
  readonly telemetry: BackendTelemetry & { deviceMemory(): DeviceMemory };

  constructor(options: SimulatedGpuBackendOptions) {
    const speedup = options.speedup ?? 1;
    const utilization = options.utilization ?? 0.35;
    if (!(speedup > 0) || !Number.isFinite(speedup))
      throw new TypeError(`speedup must be a positive number, got ${speedup}`);
    if (!(utilization > 0 && utilization <= 1))
      throw new TypeError(`utilization must be in (0, 1], got ${utilization}`);
    this.gpuType = options.gpuType;
    this.speedup = speedup;
    this.utilization = utilization;
    this.renderer = new SimulatedRenderPool(options.renderThreads ?? 1);
    this.injectedLoadFailures = options.injectModelLoadFailures ?? 0;
    this.memory = new SimulatedGpuMemory(options.gpuType);
    this.telemetry = {
      busyFraction: (now) => this.work.busy.fraction(now),
      onPass: (listener) => this.work.onPass(listener),
      deviceMemory: () => this.memory.snapshot(),
    };
  }

  supports(model: ModelName): boolean {
    return SIMULATED_MODELS.includes(model);
  }

  async generate(job: InferenceJob, hooks: InferenceHooks): Promise<GeneratedImage[]> {
    if (this.closed) throw new Error('The simulated GPU backend is closed');
    if (!this.supports(job.model)) throw new TypeError(`The simulated GPU backend does not serve ${job.model}`);
    const gpu = await this.takeGpu(job, hooks.signal);
    this.counters.active++;
    let leaveGpu = this.work.passStarted({ model: job.model, images: job.numImages });
    this.memory.jobStarted(job);
    try {
      hooks.signal.throwIfAborted();
      this.ensureLoaded(job.model);
      const stepMs = modelledStepMs(job, this.gpuType, this.utilization) / this.speedup;
      // Sleep to cumulative deadlines so that timer granularity (~1 ms) does not add up over many short steps.
      let start = performance.now();
      const denoiseStart = epochMs();
      // Between steps (and before the images are encoded) the device goes to waiting work of higher priority; the
      // job's memory stays allocated. Returns the time it waited, by which its schedule moves.
      const yieldToHigher = async (): Promise<number> => {
        if (!gpu.mustYield()) return 0;
        this.counters.yielded++;
        leaveGpu();
        try {
          return await gpu.yieldToHigher(hooks.signal);
        } finally {
          // Busy again, as the same pass (not a new one for the pass metrics).
          leaveGpu = this.work.busy.begin();
        }
      };
      for (let step = 1; step <= job.steps; step++) {
        if (step > 1) start += await yieldToHigher();
        const wait = start + step * stepMs - performance.now();
        // A timer even when behind schedule: it yields to heartbeats and is where an abort is noticed.
        await sleep(Math.max(0, wait), undefined, { signal: hooks.signal });
        this.counters.steps++;
        hooks.onProgress(step, job.steps);
      }
      hooks.signal.throwIfAborted();
      await yieldToHigher();
      const renderStart = epochMs();
      hooks.onStage?.('denoise', denoiseStart, renderStart);
      const images = await this.render(job, hooks.signal);
      hooks.onStage?.('png', renderStart, epochMs());
      this.counters.jobs++;
      this.counters.images += images.length;
      return images;
    } catch (err) {
      if (hooks.signal.aborted) this.counters.cancelled++;
      throw err;
    } finally {
      this.counters.active--;
      this.memory.jobEnded();
      leaveGpu();
      gpu.release();
    }
  }

  /** Loads (verifies) the model unless it is loaded; an injected fault fails the verification. */
  private ensureLoaded(model: ModelName): void {
    if (this.loaded.has(model)) return;
    const left = this.loadFailuresLeft.get(model) ?? this.injectedLoadFailures;
    if (left > 0) {
      this.loadFailuresLeft.set(model, left - 1);
      throw new InferenceError(
        'ModelCorrupted',
        `${model} failed checksum verification on the simulated ${this.gpuType} (injected fault, ${left - 1} left)`,
      );
    }
    this.loaded.add(model);
  }

  /** Drops the model and loads it again (the worker calls this after ModelCorrupted). */
  async reloadModel(model: ModelName): Promise<void> {
    this.loaded.delete(model);
    this.ensureLoaded(model);
    return Promise.resolve();
  }

  /**
   * The job's images (seed, seed+1, ...) from the render threads, one image per thread at a time: a cancelled or
   * failed job leaves at most one image per thread to finish, unwanted, instead of its whole batch.
   */
  private async render(job: InferenceJob, signal: AbortSignal): Promise<GeneratedImage[]> {
    const images: GeneratedImage[] = [];
    let next = 0;
    let failed = false;
    const lane = async (): Promise<void> => {
      while (next < job.numImages && !failed) {
        const i = next++;
        const seed = (job.seed + i) >>> 0;
        try {
          const png = await this.renderer.render(
            { width: job.width, height: job.height, seed, prompt: job.prompt },
            signal,
            job.requestId,
          );
          images[i] = { png, seed, width: job.width, height: job.height };
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    const lanes = Math.min(this.renderer.size, job.numImages);
    await Promise.all(Array.from({ length: lanes }, lane));
    return images;
  }

  /** Waits for the device, by priority then arrival (gpu-gate.ts); returns the function that hands it on. */
  private async takeGpu(job: InferenceJob, signal: AbortSignal): Promise<GpuHold> {
    this.counters.queued++;
    try {
      const priority = job.priority ?? DEFAULT_PRIORITY_KEY;
      const onDevice = job.background ? BACKGROUND_PRIORITY + priority : priority;
      return await this.gpu.acquire(onDevice, signal, `Request ${job.requestId}`);
    } catch (err) {
      this.counters.cancelled++;
      throw err;
    } finally {
      this.counters.queued--;
    }
  }

  status(): BackendStatus {
    return {
      backend: this.name,
      ready: !this.closed,
      loadedModels: [...this.loaded].map((model) => ({
        model,
        memoryBytes: Math.round(MODELS[model].vramGb * 2 ** 30),
        executionProvider: `simulated:${this.gpuType}`,
      })),
      counters: { ...this.counters },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.renderer.close();
  }
}
