// The batch-size sweep of `npm run bench:inference -- --export DIR` (bench/inference.ts): for each batch size b, a
// backend with maxBatchSize b under a closed loop of 2b clients (so a full batch is queued while one runs and the
// device never waits for the host), then the pipeline against its bare session.run loop at batch 1. One JSON line per
// measurement, each with `"bench": "atelier"`, for bench/gpu/run.sh to set beside PyTorch's figures.
import type { OnnxBackendOptions } from '../inference/onnx';
import { overhead, percentile, round, throughput, type ModelUnderTest } from './inference-run';

export async function sweepBatchSizes(
  model: ModelUnderTest,
  modelDir: string,
  options: OnnxBackendOptions,
  batchSizes: readonly number[],
  passesPerPoint: number,
): Promise<void> {
  const provider = options.executionProviders[0] ?? 'cpu';
  const common = {
    bench: 'atelier',
    model: model.label,
    resolution: `${model.width}x${model.height}`,
    steps: model.steps,
    guidance_scale: model.guidanceScale,
    execution_provider: provider,
  };
  let batch1: number | undefined;
  for (const batch of batchSizes) {
    // Two full passes of warm-up: the first of each batch shape is where onnxruntime picks its kernels.
    const figures = await throughput(
      model,
      { ...options, maxBatchSize: batch },
      passesPerPoint * batch,
      2 * batch,
      2 * batch,
    );
    if (batch === 1) batch1 = figures.imagesPerS;
    console.log(
      JSON.stringify({
        ...common,
        batch,
        images_per_s: round(figures.imagesPerS, 3),
        batching_speedup: batch1 === undefined ? null : round(figures.imagesPerS / batch1, 3),
        passes: figures.passes,
        max_batch_seen: figures.maxBatchSeen,
        latency_p50_ms: round(percentile(figures.latenciesMs, 50), 1),
        per_image: figures.stages,
      }),
    );
  }
  const over = await overhead(model, modelDir, options);
  console.log(
    JSON.stringify({
      ...common,
      batch: 1,
      measurement: 'pipeline_vs_bare_session_run',
      pipeline_ms: round(over.pipelineMs, 2),
      bare_session_run_ms: round(over.bareMs, 2),
      pipeline_overhead_ratio: round(over.ratio, 4),
      pipeline_overhead_ratio_median: round(over.ratioMedian, 4),
      in_thread_overhead_ratio: round(over.inThreadRatio, 4),
      per_request: over.stages,
    }),
  );
}
