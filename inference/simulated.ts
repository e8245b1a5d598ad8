// The SIMULATED GPU BACKEND: stands in for a diffusion pipeline on a GPU fleet we do not have here. It takes as
// long as the modelled GPU would (from the GPU's FP16 throughput and the model's work per step), reports every
// step, stops within one step when cancelled, and returns real PNGs of the requested size whose pixels are a
// deterministic function of the seed and prompt (smooth gradients and soft shapes), so that the same request
// always yields the same bytes, as a real pipeline with a fixed seed does. Like one GPU holding one pipeline, it
// runs one job at a time: a worker may hold several requests (its slots), and they queue here in arrival order,
// so throughput under load is what the modelled GPU would give. Load tests, chaos tests and the
// local stack run on it; real inference is the ONNX backend (inference/onnx).
import { setTimeout as sleep } from 'node:timers/promises';
import { PNG } from 'pngjs';
import { GPU_SPECS, type GpuType } from '../core/gpu';
import { MODELS, type ModelName } from '../core/models';
import {
  InferenceAbortedError,
  type BackendStatus,
  type GeneratedImage,
  type InferenceBackend,
  type InferenceHooks,
  type InferenceJob,
} from './backend';

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
}

/**
 * Modelled time of one denoising step, milliseconds, before the speed-up:
 * stepTflopAt1Mpx x megapixels x images / (GPU FP16 TFLOPS x utilization).
 * SDXL 1024x1024 on an A10G: 12 x 1.05 / (125 x 0.35) = 0.29 s per step, 8.6 s for 30 steps.
 */
export function modelledStepMs(
  job: Pick<InferenceJob, 'model' | 'width' | 'height' | 'numImages'>,
  gpuType: GpuType,
  utilization = 0.35,
): number {
  const megapixels = (job.width * job.height) / 1_000_000;
  const tflop = MODELS[job.model].stepTflopAt1Mpx * megapixels * job.numImages;
  return (tflop / (GPU_SPECS[gpuType].fp16Tflops * utilization)) * 1000;
}

export class SimulatedGpuBackend implements InferenceBackend {
  readonly name = 'simulated';
  readonly gpuType: GpuType;
  private readonly speedup: number;
  private readonly utilization: number;
  private readonly modelsUsed = new Set<ModelName>();
  /** `active`: jobs on the simulated GPU (0 or 1); `queued`: jobs waiting for it. */
  private readonly counters = { jobs: 0, images: 0, steps: 0, cancelled: 0, active: 0, queued: 0 };
  /** Settles when the last job handed the GPU so far has left it. */
  private gpuFree: Promise<void> = Promise.resolve();
  private closed = false;

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
  }

  supports(model: ModelName): boolean {
    return SIMULATED_MODELS.includes(model);
  }

  async generate(job: InferenceJob, hooks: InferenceHooks): Promise<GeneratedImage[]> {
    if (this.closed) throw new Error('The simulated GPU backend is closed');
    if (!this.supports(job.model)) throw new TypeError(`The simulated GPU backend does not serve ${job.model}`);
    const release = await this.takeGpu(job, hooks.signal);
    this.counters.active++;
    try {
      hooks.signal.throwIfAborted();
      const stepMs = modelledStepMs(job, this.gpuType, this.utilization) / this.speedup;
      // Sleep to cumulative deadlines so that timer granularity (~1 ms) does not add up over many short steps.
      const start = performance.now();
      for (let step = 1; step <= job.steps; step++) {
        const wait = start + step * stepMs - performance.now();
        // A timer even when behind schedule: it yields to heartbeats and is where an abort is noticed.
        await sleep(Math.max(0, wait), undefined, { signal: hooks.signal });
        this.counters.steps++;
        hooks.onProgress(step, job.steps);
      }
      hooks.signal.throwIfAborted();
      const images: GeneratedImage[] = [];
      for (let i = 0; i < job.numImages; i++) {
        const seed = (job.seed + i) >>> 0;
        images.push({
          png: renderSimulatedImage(job.width, job.height, seed, job.prompt),
          seed,
          width: job.width,
          height: job.height,
        });
      }
      this.modelsUsed.add(job.model);
      this.counters.jobs++;
      this.counters.images += images.length;
      return images;
    } catch (err) {
      if (hooks.signal.aborted) this.counters.cancelled++;
      throw err;
    } finally {
      this.counters.active--;
      release();
    }
  }

  /**
   * Waits, in arrival order, until the jobs ahead have left the GPU; returns the function that hands it on. A job
   * cancelled while waiting rejects at once and passes its turn along when the job ahead finishes.
   */
  private async takeGpu(job: InferenceJob, signal: AbortSignal): Promise<() => void> {
    const ahead = this.gpuFree;
    let release!: () => void;
    this.gpuFree = new Promise<void>((resolve) => (release = resolve));
    this.counters.queued++;
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () =>
          reject(
            new InferenceAbortedError(`Request ${job.requestId} was cancelled while queued for the GPU`, {
              cause: signal.reason,
            }),
          );
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        void ahead.then(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    } catch (err) {
      this.counters.cancelled++;
      void ahead.then(release);
      throw err;
    } finally {
      this.counters.queued--;
    }
    return release;
  }

  status(): BackendStatus {
    return {
      backend: this.name,
      ready: !this.closed,
      loadedModels: [...this.modelsUsed].map((model) => ({
        model,
        memoryBytes: Math.round(MODELS[model].vramGb * 2 ** 30),
        executionProvider: `simulated:${this.gpuType}`,
      })),
      counters: { ...this.counters },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** 32-bit FNV-1a: a stable, dependency-free hash of the prompt to mix into the seed. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast and good enough to pick colours and shapes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number): number => (n + h * 12) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number): number => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [f(0) * 255, f(8) * 255, f(4) * 255];
}

/**
 * A PNG of width x height: a linear gradient between two colours at a random angle, with soft-edged discs
 * blended over it. Same (size, seed, prompt) -> same bytes.
 */
export function renderSimulatedImage(width: number, height: number, seed: number, prompt: string): Buffer {
  const random = prng(seed ^ fnv1a(prompt));
  const baseHue = random();
  const from = hslToRgb(baseHue, 0.55 + 0.35 * random(), 0.25 + 0.2 * random());
  const to = hslToRgb((baseHue + 0.25 + 0.5 * random()) % 1, 0.5 + 0.4 * random(), 0.55 + 0.3 * random());
  const angle = random() * Math.PI * 2;
  const dx = Math.cos(angle);
  const dy = Math.sin(angle);
  const scale = Math.max(width, height);
  const discs = Array.from({ length: 3 + Math.floor(random() * 5) }, () => ({
    cx: random() * width,
    cy: random() * height,
    r: (0.08 + 0.25 * random()) * scale,
    color: hslToRgb(random(), 0.6 + 0.4 * random(), 0.4 + 0.4 * random()),
    opacity: 0.35 + 0.5 * random(),
  }));

  const png = new PNG({ width, height, colorType: 2 });
  const data = png.data;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Gradient position in [0, 1] along the angle, centred on the image.
      const t = Math.min(1, Math.max(0, 0.5 + ((x - width / 2) * dx + (y - height / 2) * dy) / scale));
      let r = from[0] + (to[0] - from[0]) * t;
      let g = from[1] + (to[1] - from[1]) * t;
      let b = from[2] + (to[2] - from[2]) * t;
      for (const d of discs) {
        const ddx = x - d.cx;
        const ddy = y - d.cy;
        const dist2 = (ddx * ddx + ddy * ddy) / (d.r * d.r);
        if (dist2 >= 1) continue;
        // Smooth falloff: opaque centre, feathered rim.
        const w = d.opacity * (1 - dist2) * (1 - dist2);
        r += (d.color[0] - r) * w;
        g += (d.color[1] - g) * w;
        b += (d.color[2] - b) * w;
      }
      const o = (y * width + x) << 2;
      data[o] = r;
      data[o + 1] = g;
      data[o + 2] = b;
      data[o + 3] = 255;
    }
  }
  return PNG.sync.write(png, { colorType: 2, inputHasAlpha: true });
}
