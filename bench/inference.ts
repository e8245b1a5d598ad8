// `npm run bench:inference`: measures the ONNX backend (not a test; nothing here passes or fails). Two models:
//   tiny-sd     the committed test export (64x64, 4 steps), where fixed costs dominate;
//   bench-unet  the same pipeline with a wider random-weight UNet (channels 128/256) generated into a temp dir at
//               start, 512x512 (64x64 latents), 20 steps with guidance: a UNet step takes ~35 ms on a CPU core pair,
//               still far lighter than a real SD UNet (seconds on CPU), so the overhead ratio here is an upper bound.
// For each: images/s one request at a time (maxBatchSize 1) and with dynamic batching at concurrency 8
// (maxBatchSize 8), latency p50/p99, main-thread event-loop lag while inference runs, and the pipeline's time
// against a bare loop of session.run calls on the same tensors. The last line is one JSON object; its top-level
// figures are the bench-unet ones (the realistic per-step cost), tiny-sd's are under "tiny". Latency p50/p99 are
// those of the batched run at concurrency 8 (what a loaded worker gives); latency_batch1_* are requests alone.
//   npm run bench:inference [-- --quick]
//   ATELIER_ONNX_EXECUTION_PROVIDERS=cuda,cpu npm run bench:inference     (GPU machine with the CUDA binaries)
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { InferenceJob } from '../inference/backend';
import { createOnnxBackend, resolveOnnxBackendOptions, type OnnxBackendOptions } from '../inference/onnx';
import { ClipPromptTokenizer } from '../inference/onnx/clip-tokenizer';
import { SeededGaussian } from '../inference/onnx/noise';
import { sessionOptions } from '../inference/onnx/session-options';
import { writeExportWithRegistry } from '../models/tools/export-registry';

const REGISTRY_PATH = resolve(__dirname, '../models/registry.json');
const TINY_SD_SOURCE = resolve(__dirname, '../models/tiny-sd');

const quick = process.argv.includes('--quick');

interface ModelUnderTest {
  readonly label: string;
  readonly registryPath: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
  /** Requests at batch 1, requests at concurrency 8, and pipeline-vs-bare repetitions. */
  readonly counts: { readonly single: number; readonly batched: number; readonly overheadReps: number };
}

interface RunFigures {
  readonly imagesPerS: number;
  readonly latenciesMs: number[];
  readonly passes: number;
  readonly maxBatchSeen: number;
  /** Main-thread event-loop delay during the run, ms. */
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
}

const PROMPTS = [
  'a photo of an astronaut riding a horse on the moon',
  'a watercolor painting of a red fox in a snowy forest',
  'a lighthouse on a rocky coast during a storm',
  'a cozy cabin in the mountains, digital art',
];

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `atelier-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

const median = (values: readonly number[]): number => percentile(values, 50);
const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

function job(model: ModelUnderTest, i: number): InferenceJob {
  return {
    requestId: `bench-${model.label}-${i}`,
    model: 'tiny-sd',
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

/** Closed loop: `concurrency` clients, each sending its next request when the previous one returns. */
async function throughput(
  model: ModelUnderTest,
  options: Partial<OnnxBackendOptions>,
  requests: number,
  concurrency: number,
): Promise<RunFigures> {
  const cache = tempDir('bench-cache');
  const backend = await createOnnxBackend({
    ...options,
    registryPath: model.registryPath,
    cacheDir: cache.path,
    preload: ['tiny-sd'],
  });
  try {
    // Warm-up: first runs allocate onnxruntime's arena and pick kernels.
    await Promise.all(
      Array.from({ length: Math.min(concurrency, 2) }, (_, i) =>
        backend.generate(job(model, 900 + i), { onProgress: () => undefined, signal: new AbortController().signal }),
      ),
    );
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
          await backend.generate(job(model, i), { onProgress: () => undefined, signal: new AbortController().signal });
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
    };
  } finally {
    await backend.close();
    cache.cleanup();
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
  const sample = new ort.Tensor('float32', new SeededGaussian(1).fill(new Float32Array(rows * 4 * h * w)), [
    rows,
    4,
    h,
    w,
  ]);
  const timestep = new ort.Tensor('float32', new Float32Array(rows).fill(501), [rows]);
  const latents = new ort.Tensor('float32', new SeededGaussian(2).fill(new Float32Array(4 * h * w)), [1, 4, h, w]);
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

/**
 * Alternates a batch-1 request through the backend (end to end: queue, inference thread, PNG thread, back) with the
 * bare loop, so both see the same machine state. The ratio is of the fastest of each (other processes on a shared
 * machine only ever add time, so the minimum is the cleanest estimate of each path's own cost); the ratio of
 * medians is reported beside it.
 */
async function overhead(
  model: ModelUnderTest,
  modelDir: string,
  options: OnnxBackendOptions,
): Promise<{ ratio: number; ratioMedian: number; pipelineMs: number; bareMs: number }> {
  const cache = tempDir('bench-cache');
  const backend = await createOnnxBackend({
    ...options,
    maxBatchSize: 1,
    registryPath: model.registryPath,
    cacheDir: cache.path,
    preload: ['tiny-sd'],
  });
  const bare = await bareSessionLoop(model, modelDir, options);
  try {
    const pipelineMs: number[] = [];
    const bareMs: number[] = [];
    const counters = (): Readonly<Record<string, number>> => backend.status().counters;
    const one = async (i: number): Promise<number> => {
      const t0 = performance.now();
      await backend.generate(job(model, i), { onProgress: () => undefined, signal: new AbortController().signal });
      return performance.now() - t0;
    };
    await one(999);
    await bare.run();
    const before = counters();
    for (let rep = 0; rep < model.counts.overheadReps; rep++) {
      pipelineMs.push(await one(rep));
      bareMs.push(await bare.run());
    }
    const after = counters();
    const per = (key: string): number => ((after[key] ?? 0) - (before[key] ?? 0)) / model.counts.overheadReps;
    console.log(
      `  ${model.label}: per request ${median(pipelineMs).toFixed(1)} ms end to end; in the thread ${per('passMs').toFixed(1)} ms, of which session.run ${per('sessionRunMs').toFixed(1)} ms and PNG ${per('pngMs').toFixed(1)} ms; bare loop ${median(bareMs).toFixed(1)} ms`,
    );
    const best = (values: number[]): number => Math.min(...values);
    return {
      ratio: best(pipelineMs) / best(bareMs),
      ratioMedian: median(pipelineMs) / median(bareMs),
      pipelineMs: best(pipelineMs),
      bareMs: best(bareMs),
    };
  } finally {
    await bare.release();
    await backend.close();
    cache.cleanup();
  }
}

async function benchModel(
  model: ModelUnderTest,
  modelDir: string,
  options: OnnxBackendOptions,
): Promise<Record<string, number | string>> {
  const single = await throughput(model, { ...options, maxBatchSize: 1 }, model.counts.single, 1);
  const batched = await throughput(model, { ...options, maxBatchSize: 8 }, model.counts.batched, 8);
  const over = await overhead(model, modelDir, options);
  const figures = {
    model: model.label,
    resolution: `${model.width}x${model.height}`,
    steps: model.steps,
    guidance_scale: model.guidanceScale,
    images_per_s_batch1: round(single.imagesPerS, 3),
    images_per_s_batched: round(batched.imagesPerS, 3),
    batching_speedup: round(batched.imagesPerS / single.imagesPerS, 3),
    latency_p50_ms: round(percentile(batched.latenciesMs, 50), 1),
    latency_p99_ms: round(percentile(batched.latenciesMs, 99), 1),
    latency_batch1_p50_ms: round(percentile(single.latenciesMs, 50), 1),
    latency_batch1_p99_ms: round(percentile(single.latenciesMs, 99), 1),
    batched_passes: batched.passes,
    batched_requests: model.counts.batched,
    max_batch_seen: batched.maxBatchSeen,
    event_loop_lag_p99_ms: round(Math.max(single.lagP99Ms, batched.lagP99Ms), 2),
    event_loop_lag_max_ms: round(Math.max(single.lagMaxMs, batched.lagMaxMs), 2),
    pipeline_ms: round(over.pipelineMs, 1),
    bare_session_run_ms: round(over.bareMs, 1),
    pipeline_overhead_ratio: round(over.ratio, 4),
    pipeline_overhead_ratio_median: round(over.ratioMedian, 4),
  };
  console.log(
    `${model.label} ${figures.resolution} ${model.steps} steps, guidance ${model.guidanceScale}: ` +
      `${figures.images_per_s_batch1} img/s at batch 1, ${figures.images_per_s_batched} img/s batched at concurrency 8 ` +
      `(x${figures.batching_speedup}, ${batched.passes} passes for ${model.counts.batched} requests, largest ${batched.maxBatchSeen}); ` +
      `latency p50 ${figures.latency_p50_ms} ms p99 ${figures.latency_p99_ms} ms batched, p50 ${figures.latency_batch1_p50_ms} ms alone; ` +
      `event-loop lag p99 ${figures.event_loop_lag_p99_ms} ms (max ${figures.event_loop_lag_max_ms}); ` +
      `pipeline ${figures.pipeline_ms} ms vs bare session.run loop ${figures.bare_session_run_ms} ms = ratio ${figures.pipeline_overhead_ratio}`,
  );
  return figures;
}

async function main(): Promise<void> {
  const options = resolveOnnxBackendOptions({ preload: [] });
  const provider = options.executionProviders[0] ?? 'cpu';
  console.log(
    `bench:inference on ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), execution providers ${options.executionProviders.join(',')}, onnxruntime-node ${ort.env.versions.common}`,
  );

  const tiny: ModelUnderTest = {
    label: 'tiny-sd',
    registryPath: REGISTRY_PATH,
    width: 64,
    height: 64,
    steps: 4,
    guidanceScale: 7.5,
    counts: quick ? { single: 16, batched: 32, overheadReps: 5 } : { single: 48, batched: 96, overheadReps: 15 },
  };
  const tinyFigures = await benchModel(tiny, TINY_SD_SOURCE, options);

  // Generated now, never committed: a few MB of random UNet weights.
  const variant = tempDir('bench-unet');
  const { registryPath, modelDir } = writeExportWithRegistry(variant.path, { seed: 4242, unetChannels: [128, 256] });
  try {
    const large: ModelUnderTest = {
      label: 'bench-unet-128-256',
      registryPath,
      width: 512,
      height: 512,
      steps: 20,
      guidanceScale: 7.5,
      counts: quick ? { single: 2, batched: 8, overheadReps: 2 } : { single: 6, batched: 24, overheadReps: 8 },
    };
    const largeFigures = await benchModel(large, modelDir, options);
    const summary = {
      ...largeFigures,
      execution_provider: provider,
      cpus: cpus().length,
      quick,
      tiny: tinyFigures,
    };
    console.log(JSON.stringify(summary));
  } finally {
    variant.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
