// generateImage with real inference: the GPU worker's ONNX Runtime backend (created as workers/gpu-worker.ts creates
// it) serving tiny-sd on CPU, on a real Temporal dev server. A request returns the PNG onnxruntime produced; a
// corrupted model file fails the first attempt with ModelCorrupted and the retry completes on the reloaded copy;
// concurrent compatible requests taken by one worker share batched passes; a worker whose copy is corrupted hands the
// request back to the fleet, and another worker with a good copy completes it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { GenerationResult } from '../../workflows/generate-image';
import {
  createTemporalTestEnv,
  startExtraGpuWorker,
  startGenerationHarness,
  type GenerationHarness,
} from '../helpers/temporal';
import { decodePng } from '../helpers/png';
import { eventually } from '../helpers/eventually';
import { noHooks, seedCache, tinyJob } from '../inference/fixtures';

interface InferenceAttempt {
  /** Identity of the worker that started this attempt. */
  readonly identity: string | undefined;
  /** How the attempt ended: `completed`, or the failure type it failed with. */
  readonly outcome: string | undefined;
  readonly failureMessage: string | undefined;
}

/**
 * Each `runInference` attempt in the history, in order. The workflow schedules every retry as an activity of its own
 * (workflows/gpu-step.ts), so each attempt has its scheduled, started and closing events.
 */
async function inferenceAttempts(handle: WorkflowHandle): Promise<InferenceAttempt[]> {
  const history = await handle.fetchHistory();
  const attempts = new Map<string, { identity?: string; outcome?: string; failureMessage?: string }>();
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'runInference')
      attempts.set(String(event.eventId), {});
    const started = event.activityTaskStartedEventAttributes;
    const a = (id: unknown) => attempts.get(String(id));
    if (started) {
      const attempt = a(started.scheduledEventId);
      if (attempt) attempt.identity = started.identity ?? undefined;
    }
    const failed = event.activityTaskFailedEventAttributes;
    if (failed) {
      const attempt = a(failed.scheduledEventId);
      if (attempt) {
        attempt.outcome =
          failed.failure?.applicationFailureInfo?.type ??
          failed.failure?.cause?.applicationFailureInfo?.type ??
          'failed';
        attempt.failureMessage = failed.failure?.message ?? undefined;
      }
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed) {
      const attempt = a(completed.scheduledEventId);
      if (attempt) attempt.outcome = 'completed';
    }
  }
  return [...attempts.values()].map((x) => ({
    identity: x.identity,
    outcome: x.outcome,
    failureMessage: x.failureMessage,
  }));
}

/** Flips one byte in the middle of the cached tiny-sd UNet under `cacheDir`, as a bad disk would. */
function corruptCachedUnet(cacheDir: string): { file: string; bytes: Buffer } {
  const file = path.join(seedCache(cacheDir), 'unet', 'model.onnx');
  const bytes = readFileSync(file);
  bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
  writeFileSync(file, bytes);
  return { file, bytes };
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
    const req = h.request({
      model: 'tiny-sd',
      prompt: 'a lighthouse at dusk',
      width: 64,
      height: 48,
      steps: 3,
      seed: 11,
    });
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
      tinyJob({
        prompt: req.prompt,
        negativePrompt: req.negativePrompt,
        width: 64,
        height: 48,
        steps: 3,
        seed: 11,
        guidanceScale: req.guidanceScale,
      }),
      noHooks(),
    );
    assert.ok(direct);
    assert.ok(direct.png.equals(stored.body), 'the stored PNG is byte-identical to the pipeline output');

    const events = await h.events(req);
    const progress = events.filter((e) => e.type === 'progress');
    assert.equal(
      progress.at(-1)?.type === 'progress' ? progress.at(-1)?.step : undefined,
      3,
      'progress reaches the last step',
    );
  });

  void test('8 concurrent compatible requests through Temporal run in fewer passes than requests', async () => {
    const before = onnx().status().counters;
    const reqs = Array.from({ length: 8 }, (_, i) =>
      h.request({
        model: 'tiny-sd',
        width: 64,
        height: 64,
        steps: 4,
        seed: 100 + i,
        prompt: `a lighthouse, variation ${i}`,
      }),
    );
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
    const { file: unet, bytes } = corruptCachedUnet(cacheDir);
    h = await startGenerationHarness(env, { gpus: { a10g: FLEET } });

    const req = h.request({ model: 'tiny-sd', width: 64, height: 64, steps: 2, seed: 3 });
    const handle = await h.start(req);
    const result: GenerationResult = await handle.result();
    assert.equal(result.images.length, 1);
    assert.deepEqual(
      (await inferenceAttempts(handle)).map(({ outcome }) => outcome),
      ['ModelCorrupted', 'completed'],
    );
    const counters = onnx().status().counters;
    assert.equal(counters.modelCorruptions, 1);
    assert.equal(counters.modelReloads, 1);
    assert.equal(counters.modelReloadFailures, 0);
    assert.ok(!readFileSync(unet).equals(bytes), 'the cached UNet was replaced by the verified source copy');
    const events = await h.events(req);
    assert.deepEqual(
      events.filter((e) => e.type === 'completed' || e.type === 'failed').map((e) => e.type),
      ['completed'],
      'one terminal event',
    );
  });
  void test('a worker with a corrupted copy fails the attempt; another worker with a good copy completes the request', async () => {
    // Two machines of the a10g fleet: "gpu-a" restarts on a cache whose UNet lost a byte, "gpu-b" has a good copy.
    // gpu-a is alone on the queue for the first attempt, then leaves the fleet (as a node being drained would), so the
    // retry can only go to gpu-b.
    const fleet = await startGenerationHarness(env, { gpus: {} });
    const badCache = await mkdtemp(path.join(os.tmpdir(), 'atelier-onnx-bad-'));
    const goodCache = await mkdtemp(path.join(os.tmpdir(), 'atelier-onnx-good-'));
    corruptCachedUnet(badCache);
    const gpuA = await startExtraGpuWorker(env, fleet, {
      gpuType: 'a10g',
      identity: 'gpu-a (corrupted copy)',
      fleet: { slots: 1, onnx: { ...FLEET.onnx, cacheDir: badCache } },
    });
    let gpuB: Awaited<ReturnType<typeof startExtraGpuWorker>> | undefined;
    try {
      const req = fleet.request({ model: 'tiny-sd', width: 64, height: 64, steps: 2, seed: 5 });
      const handle = await fleet.start(req);
      const a = gpuA.onnx;
      assert.ok(a);
      await eventually(
        () => (a.status().counters.modelCorruptions ?? 0) === 1,
        20_000,
        'gpu-a to detect the corrupted UNet',
      );
      await gpuA.stop();
      gpuB = await startExtraGpuWorker(env, fleet, {
        gpuType: 'a10g',
        identity: 'gpu-b (good copy)',
        fleet: { slots: 1, onnx: { ...FLEET.onnx, cacheDir: goodCache } },
      });
      const result: GenerationResult = await handle.result();

      const [failed, attempt, ...more] = await inferenceAttempts(handle);
      assert.equal(more.length, 0);
      assert.ok(failed && attempt);
      assert.equal(failed.identity, 'gpu-a (corrupted copy)');
      assert.equal(failed.outcome, 'ModelCorrupted');
      assert.match(failed.failureMessage ?? '', /unet\/model\.onnx fails verification/);
      assert.equal(
        attempt.identity,
        'gpu-b (good copy)',
        'the completing attempt ran on the worker with the good copy',
      );
      assert.equal(attempt.outcome, 'completed');
      const b = gpuB.onnx;
      assert.ok(b);
      assert.equal(b.status().counters.modelCorruptions ?? 0, 0);

      const [image] = result.images;
      assert.ok(image);
      const stored = await fleet.store.get(image.key);
      assert.ok(stored);
      const [direct] = await b.generate(
        tinyJob({
          prompt: req.prompt,
          negativePrompt: req.negativePrompt,
          width: 64,
          height: 64,
          steps: 2,
          seed: 5,
          guidanceScale: req.guidanceScale,
        }),
        noHooks(),
      );
      assert.ok(direct?.png.equals(stored.body), "the stored PNG is the good copy's output");
      const events = await fleet.events(req);
      assert.deepEqual(
        events.filter((e) => e.type === 'completed' || e.type === 'failed').map((e) => e.type),
        ['completed'],
        'one terminal event',
      );
    } finally {
      await gpuA.stop();
      await gpuB?.stop();
      await fleet.stop();
      await rm(badCache, { recursive: true, force: true });
      await rm(goodCache, { recursive: true, force: true });
    }
  });
});
