// The measurements of `npm run bench:inference` (bench/inference.ts): a closed-loop throughput run through the
// backend, and the pipeline against a bare loop of session.run calls on the same tensors.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { InferenceJob } from '../inference/backend';
import { createOnnxBackend, type OnnxBackendOptions } from '../inference/onnx';
import { ClipPromptTokenizer } from '../inference/onnx/clip-tokenizer';
import { SeededGaussian } from '../inference/onnx/noise';
import { sessionOptions } from '../inference/onnx/session-options';

/** The registry name every bench model is served under (the catalogue's name for the ONNX test model). */
export const BENCH_MODEL = 'tiny-sd';

export interface ModelUnderTest {
  readonly label: string;
  readonly registryPath: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
  /** Requests at batch 1, requests at concurrency 8, and pipeline-vs-bare repetitions. */
  readonly counts: { readonly single: number; readonly batched: number; readonly overheadReps: number };
  /** Model cache shared by the runs (a large export is copied and verified once); default: a temp dir per run. */
  readonly cacheDir?: string;
}

/** Milliseconds per image by stage, from the backend's counters over a run. */
export interface StageMs {
  readonly text_encoder_ms: number;
  readonly unet_ms: number;
  /** Host maths between UNet runs: latents into the UNet input, guidance, scheduler. */
  readonly step_math_ms: number;
  readonly vae_ms: number;
  /** Splitting the VAE output into one buffer per image. */
  readonly pixels_ms: number;
  /** In the inference thread, all of it (session.run, maths and the rest). */
  readonly pass_ms: number;
  /** In the PNG encoder threads (float planes to PNG bytes). */
  readonly png_ms: number;
}

export interface RunFigures {
  readonly imagesPerS: number;
  readonly latenciesMs: number[];
  readonly passes: number;
  readonly maxBatchSeen: number;
  /** Main-thread event-loop delay during the run, ms. */
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
  readonly stages: StageMs;
}

const PROMPTS = [
  'a photo of an astronaut riding a horse on the moon',
  'a watercolor painting of a red fox in a snowy forest',
  'a lighthouse on a rocky coast during a storm',
  'a cozy cabin in the mountains, digital art',
];

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `atelier-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export const median = (values: readonly number[]): number => percentile(values, 50);
export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

function job(model: ModelUnderTest, i: number): InferenceJob {
  return {
    requestId: `bench-${model.label}-${i}`,
    model: BENCH_MODEL,
    prompt: PROMPTS[i % PROMPTS.length] as string,
    negativePrompt: i % 2 === 0 ? '' : 'blurry, low quality',
    width: model.width,
    height: model.height,
    steps: model.steps,
    seed: 10_000 + i,
    numImages: 1,
    guidanceScale: model.guidanceScale,
    loras: [],
    controlnets: [],
  };
}

const noHooks = () => ({ onProgress: () => undefined, signal: new AbortController().signal });

async function benchBackend(model: ModelUnderTest, options: Partial<OnnxBackendOptions>) {
  const cache = model.cacheDir ? undefined : tempDir('bench-cache');
  const backend = await createOnnxBackend({
    ...options,
    registryPath: model.registryPath,
    cacheDir: model.cacheDir ?? (cache?.path as string),
    preload: [BENCH_MODEL],
  });
  return {
    backend,
    close: async () => {
      await backend.close();
      cache?.cleanup();
    },
  };
}

function stagesPerImage(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, n: number) {
  const per = (key: string): number => round(((after[key] ?? 0) - (before[key] ?? 0)) / n, 3);
  return {
    text_encoder_ms: per('textEncoderMs'),
    unet_ms: per('unetMs'),
    step_math_ms: per('stepMathMs'),
    vae_ms: per('vaeMs'),
    pixels_ms: per('pixelsMs'),
    pass_ms: per('passMs'),
    png_ms: per('pngMs'),
  };
}

/** Closed loop: `concurrency` clients, each sending its next request when the previous one returns. */
export async function throughput(
  model: ModelUnderTest,
  options: Partial<OnnxBackendOptions>,
  requests: number,
  concurrency: number,
  warmup = Math.min(concurrency, 2),
): Promise<RunFigures> {
  const { backend, close } = await benchBackend(model, options);
  try {
    // Warm-up: first runs allocate onnxruntime's arena and pick kernels (for each batch shape, under CUDA).
    await Promise.all(Array.from({ length: warmup }, (_, i) => backend.generate(job(model, 900 + i), noHooks())));
    const before = backend.status().counters;
    const latenciesMs: number[] = [];
    let next = 0;
    // One histogram per run, enabled once: re-enabling a histogram records the time it was off as one long delay.
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < requests) {
          const i = next++;
          const t0 = performance.now();
          await backend.generate(job(model, i), noHooks());
          latenciesMs.push(performance.now() - t0);
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    lag.disable();
    const after = backend.status().counters;
    return {
      imagesPerS: requests / elapsedS,
      latenciesMs,
      passes: (after.passes ?? 0) - (before.passes ?? 0),
      maxBatchSeen: after.maxBatchSeen ?? 0,
      lagP99Ms: lag.percentile(99) / 1e6,
      lagMaxMs: lag.max / 1e6,
      stages: stagesPerImage(before, after, requests),
    };
  } finally {
    await close();
  }
}

/**
 * The same work as one request at batch 1, as nothing but session.run calls on tensors built beforehand: text
 * encoder once (cond + uncond rows), the UNet `steps` times, the VAE once. Runs on this thread, with the session
 * options the backend uses.
 */
async function bareSessionLoop(
  model: ModelUnderTest,
  modelDir: string,
  options: OnnxBackendOptions,
): Promise<{ run: () => Promise<number>; release: () => Promise<void> }> {
  const sessionConfig = sessionOptions({ ...options, deviceId: options.deviceIds[0] ?? 0 });
  const [te, unet, vae] = await Promise.all(
    ['text_encoder', 'unet', 'vae_decoder'].map((m) =>
      ort.InferenceSession.create(join(modelDir, m, 'model.onnx'), sessionConfig),
    ),
  );
  const tokenizer = await ClipPromptTokenizer.load(join(modelDir, 'tokenizer'));
  const guided = model.guidanceScale > 1;
  const rows = guided ? 2 : 1;
  const ids = new Int32Array(rows * 77);
  tokenizer.encodeInto(PROMPTS[0] as string, ids, 0);
  if (guided) tokenizer.encodeInto('', ids, 77);
  const textFeeds = { input_ids: new ort.Tensor('int32', ids, [rows, 77]) };
  const context = (await te!.run(textFeeds)).last_hidden_state as ort.Tensor;
  const [h, w] = [model.height / 8, model.width / 8];
  const latentData = (seed: number, n: number) => new SeededGaussian(seed).fill(new Float32Array(n * 4 * h * w));
  const sample = new ort.Tensor('float32', latentData(1, rows), [rows, 4, h, w]);
  const timestep = new ort.Tensor('float32', new Float32Array(rows).fill(501), [rows]);
  const latents = new ort.Tensor('float32', latentData(2, 1), [1, 4, h, w]);
  return {
    run: async () => {
      const t0 = performance.now();
      await te!.run(textFeeds);
      for (let i = 0; i < model.steps; i++) await unet!.run({ sample, timestep, encoder_hidden_states: context });
      await vae!.run({ latent_sample: latents });
      return performance.now() - t0;
    },
    release: async () => {
      await Promise.all([te!.release(), unet!.release(), vae!.release()]);
    },
  };
}

export interface OverheadFigures {
  /** End to end (queue, inference thread, PNG thread, back) over the bare loop, fastest of each. */
  readonly ratio: number;
  readonly ratioMedian: number;
  /** The inference thread's pass alone (no queue, PNG or messages) over the bare loop, fastest of each. */
  readonly inThreadRatio: number;
  readonly pipelineMs: number;
  readonly bareMs: number;
  /** Per request, from the backend's counters over the alternating run. */
  readonly stages: StageMs;
}

/**
 * Alternates a batch-1 request through the backend (end to end: queue, inference thread, PNG thread, back) with the
 * bare loop, so both see the same machine state. The ratio is of the fastest of each (other processes on a shared
 * machine only ever add time, so the minimum is the cleanest estimate of each path's own cost); the ratio of
 * medians is reported beside it.
 */
export async function overhead(
  model: ModelUnderTest,
  modelDir: string,
  options: OnnxBackendOptions,
): Promise<OverheadFigures> {
  const { backend, close } = await benchBackend(model, { ...options, maxBatchSize: 1 });
  const bare = await bareSessionLoop(model, modelDir, options);
  try {
    const pipelineMs: number[] = [];
    const passMs: number[] = [];
    const bareMs: number[] = [];
    const one = async (i: number): Promise<number> => {
      const inThread = backend.status().counters.passMs ?? 0;
      const t0 = performance.now();
      await backend.generate(job(model, i), noHooks());
      const ms = performance.now() - t0;
      passMs.push((backend.status().counters.passMs ?? 0) - inThread);
      return ms;
    };
    await one(999);
    await bare.run();
    passMs.length = 0;
    const before = backend.status().counters;
    for (let rep = 0; rep < model.counts.overheadReps; rep++) {
      pipelineMs.push(await one(rep));
      bareMs.push(await bare.run());
    }
    const stages = stagesPerImage(before, backend.status().counters, model.counts.overheadReps);
    const best = (values: number[]): number => Math.min(...values);
    return {
      ratio: best(pipelineMs) / best(bareMs),
      ratioMedian: median(pipelineMs) / median(bareMs),
      inThreadRatio: best(passMs) / best(bareMs),
      pipelineMs: best(pipelineMs),
      bareMs: best(bareMs),
      stages,
    };
  } finally {
    await bare.release();
    await close();
  }
}
