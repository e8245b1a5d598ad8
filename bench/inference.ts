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
// stages_ms_per_image splits a request alone by stage (backend counters); in_thread_overhead_ratio leaves out the
// queue, the thread messages and PNG encoding, which pipeline_overhead_ratio (end to end) includes.
// --export DIR benches an export of your own over a sweep of batch sizes (bench/inference-sweep.ts), one JSON line
// each; bench/gpu/run.sh uses it for SD-Turbo on a GPU. Flags: --help (bench/inference-args.ts).
//   npm run bench:inference [-- --quick] [-- --only tiny|unet|none] [-- --export DIR --size 512 --steps 1 ...]
//   ATELIER_ONNX_EXECUTION_PROVIDERS=cuda,cpu npm run bench:inference     (GPU machine with the CUDA binaries)
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { resolveOnnxBackendOptions, type OnnxBackendOptions } from '../inference/onnx';
import { writeExportWithRegistry } from '../models/tools/export-registry';
import { parseBenchArgs, registryForExport, type BenchArgs } from './inference-args';
import { BENCH_MODEL, overhead, percentile, round, tempDir, throughput, type ModelUnderTest } from './inference-run';
import { sweepBatchSizes } from './inference-sweep';

const REGISTRY_PATH = resolve(__dirname, '../models/registry.json');
const TINY_SD_SOURCE = resolve(__dirname, '../models/tiny-sd');

async function benchModel(
  model: ModelUnderTest,
  modelDir: string,
  options: OnnxBackendOptions,
): Promise<Record<string, unknown>> {
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
    in_thread_overhead_ratio: round(over.inThreadRatio, 4),
    stages_ms_per_image: over.stages,
    stages_ms_per_image_batched: batched.stages,
  };
  const stages = Object.entries(over.stages)
    .map(([stage, ms]) => `${stage.replace(/_ms$/, '')} ${ms}`)
    .join(', ');
  console.log(
    `${model.label} ${figures.resolution} ${model.steps} steps, guidance ${model.guidanceScale}: ` +
      `${figures.images_per_s_batch1} img/s at batch 1, ${figures.images_per_s_batched} img/s batched at concurrency 8 ` +
      `(x${figures.batching_speedup}, ${batched.passes} passes for ${model.counts.batched} requests, largest ${batched.maxBatchSeen}); ` +
      `latency p50 ${figures.latency_p50_ms} ms p99 ${figures.latency_p99_ms} ms batched, p50 ${figures.latency_batch1_p50_ms} ms alone; ` +
      `event-loop lag p99 ${figures.event_loop_lag_p99_ms} ms (max ${figures.event_loop_lag_max_ms}); ` +
      `pipeline ${figures.pipeline_ms} ms vs bare session.run loop ${figures.bare_session_run_ms} ms = ratio ${figures.pipeline_overhead_ratio} ` +
      `(in the inference thread alone ${figures.in_thread_overhead_ratio}); per request, ms: ${stages}`,
  );
  return figures;
}

function tinyModel(quick: boolean): ModelUnderTest {
  return {
    label: 'tiny-sd',
    registryPath: REGISTRY_PATH,
    width: 64,
    height: 64,
    steps: 4,
    guidanceScale: 7.5,
    counts: quick ? { single: 16, batched: 32, overheadReps: 5 } : { single: 48, batched: 96, overheadReps: 15 },
  };
}

/** The wider random-weight UNet, generated now (never committed: a few MB of weights), then its figures. */
async function benchUnet(options: OnnxBackendOptions, quick: boolean): Promise<Record<string, unknown>> {
  const variant = tempDir('bench-unet');
  try {
    const { registryPath, modelDir } = writeExportWithRegistry(variant.path, { seed: 4242, unetChannels: [128, 256] });
    const large: ModelUnderTest = {
      label: 'bench-unet-128-256',
      registryPath,
      width: 512,
      height: 512,
      steps: 20,
      guidanceScale: 7.5,
      counts: quick ? { single: 2, batched: 8, overheadReps: 2 } : { single: 6, batched: 24, overheadReps: 8 },
    };
    return await benchModel(large, modelDir, options);
  } finally {
    variant.cleanup();
  }
}

/** --export: the export's batch-size sweep and overhead, each as its own JSON line. */
async function benchExport(exportDir: string, options: OnnxBackendOptions, args: BenchArgs): Promise<void> {
  const work = tempDir('bench-export');
  try {
    const registryPath = await registryForExport(resolve(exportDir), work.path, BENCH_MODEL, args);
    const model: ModelUnderTest = {
      label: `export:${exportDir}`,
      registryPath,
      width: args.width,
      height: args.height,
      steps: args.steps,
      guidanceScale: args.guidanceScale,
      counts: { single: 0, batched: 0, overheadReps: args.quick ? 3 : 10 },
      cacheDir: work.path + '/cache',
    };
    await sweepBatchSizes(model, resolve(exportDir), options, args.batchSizes, args.passesPerPoint);
  } finally {
    work.cleanup();
  }
}

async function main(): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2));
  const options = resolveOnnxBackendOptions({ preload: [] });
  const provider = options.executionProviders[0] ?? 'cpu';
  console.log(
    `bench:inference on ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), execution providers ${options.executionProviders.join(',')}, onnxruntime-node ${ort.env.versions.common}, ${options.pngThreads} PNG thread(s)`,
  );
  if (args.exportDir !== undefined) await benchExport(args.exportDir, options, args);
  const run = (which: 'tiny' | 'unet'): boolean => args.only === 'all' || args.only === which;
  const tiny = run('tiny') ? await benchModel(tinyModel(args.quick), TINY_SD_SOURCE, options) : undefined;
  const large = run('unet') ? await benchUnet(options, args.quick) : undefined;
  if (!tiny && !large) return;
  const summary = {
    ...(large ?? tiny),
    execution_provider: provider,
    cpus: cpus().length,
    png_threads: options.pngThreads,
    quick: args.quick,
    ...(large && tiny ? { tiny } : {}),
  };
  console.log(JSON.stringify(summary));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
