// generateImage with real inference: the GPU worker's ONNX Runtime backend (created as workers/gpu-worker.ts creates
// it) serving tiny-sd on CPU, on a real Temporal dev server. A request returns the PNG onnxruntime produced; a
// corrupted model file fails the first attempt with ModelCorrupted and the retry completes on the reloaded copy;
// concurrent compatible requests taken by one worker share batched passes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { GenerationResult } from '../../workflows/generate-image';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';
import { decodePng } from '../helpers/png';
import { noHooks, seedCache, tinyJob } from '../inference/fixtures';

/** Attempt number and the previous attempt's failure type of each started `runInference`. */
async function inferenceAttempts(handle: WorkflowHandle): Promise<{ attempt: number; lastFailureType: string | undefined }[]> {
  const history = await handle.fetchHistory();
  const scheduled = new Set<string>();
  const out: { attempt: number; lastFailureType: string | undefined }[] = [];
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'runInference') scheduled.add(String(event.eventId));
    const started = event.activityTaskStartedEventAttributes;
    if (started && scheduled.has(String(started.scheduledEventId))) {
      out.push({ attempt: started.attempt ?? 0, lastFailureType: started.lastFailure?.applicationFailureInfo?.type ?? undefined });
    }
  }
  return out;
}

/**
 * As the GPU worker runs by default (slots = maxBatchSize, so concurrent requests can share a pass), with a batching
 * window wider than the default 10 ms: Temporal hands the 8 activities of the batching test to the worker over tens
 * of milliseconds, while a tiny-sd pass takes a few.
 */
const FLEET = { slots: 8, onnx: { maxBatchSize: 8, maxQueueDelayMs: 100, intraOpNumThreads: 1 } };

void describe('generateImage on the ONNX backend (tiny-sd, CPU)', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  let cacheDir: string;

  before(async () => {
    env = await createTemporalTestEnv();
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-onnx-wf-'));
    FLEET.onnx = { ...FLEET.onnx, cacheDir } as typeof FLEET.onnx;
    h = await startGenerationHarness(env, { gpus: { a10g: FLEET } });
  });
  after(async () => {
    await h?.stop();
    await env?.teardown();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  const onnx = () => {
    const backend = h.onnxBackends.get('a10g');
    assert.ok(backend, 'the a10g fleet runs the ONNX backend');
    return backend;
  };

  void test('a tiny-sd request completes with the image onnxruntime produced for its seed and prompt', async () => {
    const req = h.request({ model: 'tiny-sd', prompt: 'a lighthouse at dusk', width: 64, height: 48, steps: 3, seed: 11 });
    const result: GenerationResult = await (await h.start(req)).result();
    assert.equal(result.backend, 'onnx:cpu');
    assert.equal(result.gpuType, 'a10g');
    const [image] = result.images;
    assert.ok(image);
    const stored = await h.store.get(image.key);
    assert.ok(stored, `${image.key} is stored`);
    const png = decodePng(stored.body);
    assert.deepEqual([png.width, png.height, image.seed], [64, 48, 11]);

    // The same job run straight on the backend gives the same bytes: what the client got is the pipeline's output.
    const [direct] = await onnx().generate(
      tinyJob({ prompt: req.prompt, negativePrompt: req.negativePrompt, width: 64, height: 48, steps: 3, seed: 11, guidanceScale: req.guidanceScale }),
      noHooks(),
    );
    assert.ok(direct);
    assert.ok(direct.png.equals(stored.body), 'the stored PNG is byte-identical to the pipeline output');

    const events = await h.events(req);
    const progress = events.filter((e) => e.type === 'progress');
    assert.equal(progress.at(-1)?.type === 'progress' ? progress.at(-1)?.step : undefined, 3, 'progress reaches the last step');
  });

  void test('8 concurrent compatible requests through Temporal run in fewer passes than requests', async () => {
    const before = onnx().status().counters;
    const reqs = Array.from({ length: 8 }, (_, i) => h.request({ model: 'tiny-sd', width: 64, height: 64, steps: 4, seed: 100 + i, prompt: `a lighthouse, variation ${i}` }));
    const handles = await Promise.all(reqs.map((r) => h.start(r)));
    const results: GenerationResult[] = await Promise.all(handles.map((x) => x.result()));
    assert.ok(results.every((r) => r.backend === 'onnx:cpu' && r.images.length === 1));
    const after = onnx().status().counters;
    const passes = (after.passes ?? 0) - (before.passes ?? 0);
    assert.ok(passes < reqs.length, `${reqs.length} requests ran in ${passes} passes`);
    assert.ok((after.maxBatchSeen ?? 0) >= 2, `largest pass: ${after.maxBatchSeen}`);
  });

  void test('a corrupted model file fails the attempt with ModelCorrupted; the retry completes on the reloaded copy', async () => {
    // A worker restarting on a cache whose UNet lost a byte, as a bad disk would do it (a running worker never
    // re-reads a loaded model: sessions are only created from verified files).
    await h.stop();
    await rm(cacheDir, { recursive: true, force: true });
    const unet = path.join(seedCache(cacheDir), 'unet', 'model.onnx');
    const bytes = readFileSync(unet);
    bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
    writeFileSync(unet, bytes);
    h = await startGenerationHarness(env, { gpus: { a10g: FLEET } });

    const req = h.request({ model: 'tiny-sd', width: 64, height: 64, steps: 2, seed: 3 });
    const handle = await h.start(req);
    const result: GenerationResult = await handle.result();
    assert.equal(result.images.length, 1);
    assert.deepEqual(await inferenceAttempts(handle), [{ attempt: 2, lastFailureType: 'ModelCorrupted' }]);
    const counters = onnx().status().counters;
    assert.equal(counters.modelCorruptions, 1);
    assert.equal(counters.modelReloads, 1);
    assert.equal(counters.modelReloadFailures, 0);
    assert.ok(!readFileSync(unet).equals(bytes), 'the cached UNet was replaced by the verified source copy');
    const events = await h.events(req);
    assert.deepEqual(events.filter((e) => e.type === 'completed' || e.type === 'failed').map((e) => e.type), ['completed'], 'one terminal event');
  });
});
