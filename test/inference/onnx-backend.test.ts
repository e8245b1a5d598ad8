// The ONNX backend end to end on CPU with the committed tiny-sd export: real onnxruntime sessions on inference
// threads, real PNGs. What a user relies on: the image they asked for (size, seed), the same image whether or not it
// shared a batch, cancellation that frees the worker without hurting other requests, recovery from corrupted model
// files and out-of-memory, and a main thread that stays responsive while models run.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { InferenceError, type GeneratedImage, type InferenceJob } from '../../inference/backend';
import { ModelRegistry } from '../../inference/onnx';
import type { OnnxBackend } from '../../inference/onnx';
import { decode, maxPixelDifference, noHooks, REGISTRY_PATH, seedCache, tinyBackend, tinyJob } from './fixtures';

/** Eight different requests: prompts, negative prompts and seeds all vary. */
const PROMPTS = [
  'a photo of an astronaut riding a horse',
  'a watercolor painting of a red fox',
  'a cat sitting on a windowsill at sunset',
  'portrait of a dog wearing sunglasses',
  'a lighthouse on a rocky coast during a storm',
  'a bowl of fruit on a wooden table',
  'a futuristic city skyline at night',
  'an ancient castle on a hill surrounded by fog',
];
const varied = (i: number): InferenceJob =>
  tinyJob({
    prompt: PROMPTS[i] as string,
    negativePrompt: i % 2 === 0 ? '' : 'blurry, low quality',
    seed: 1000 + 17 * i,
  });

function sha(image: GeneratedImage): string {
  return createHash('sha256').update(image.png).digest('hex');
}

describe('ONNX backend on tiny-sd (CPU)', { timeout: 180_000 }, () => {
  /** Runs every request alone: maxBatchSize 1. Its images are the reference "unbatched" output. */
  let solo: { backend: OnnxBackend; close: () => Promise<void> };
  const alone = new Map<string, GeneratedImage>();
  const aloneImage = async (job: InferenceJob): Promise<GeneratedImage> => {
    const key = JSON.stringify({ ...job, requestId: '' });
    let image = alone.get(key);
    if (!image) {
      image = (await solo.backend.generate(job, noHooks()))[0] as GeneratedImage;
      alone.set(key, image);
    }
    return image;
  };

  before(async () => {
    solo = await tinyBackend({ maxBatchSize: 1, preload: ['tiny-sd'] });
  });
  after(async () => {
    await solo.close();
  });

  test('reports ready with the model loaded and its memory once preloaded', () => {
    const status = solo.backend.status();
    assert.equal(status.backend, 'onnx:cpu');
    assert.equal(status.ready, true);
    const tiny = status.loadedModels.find((m) => m.model === 'tiny-sd');
    assert.ok(tiny, 'tiny-sd is listed as loaded');
    assert.equal(tiny.executionProvider, 'cpu');
    const registry = JSON.parse(readFileSync(REGISTRY_PATH, 'utf8')) as {
      models: { name: string; files: { path: string; size: number }[] }[];
    };
    const onnxBytes = registry.models
      .find((m) => m.name === 'tiny-sd')
      ?.files.filter((f) => f.path.endsWith('.onnx'))
      .reduce((n, f) => n + f.size, 0);
    assert.ok(
      onnxBytes !== undefined && tiny.memoryBytes >= onnxBytes,
      `memory ${tiny.memoryBytes} covers the weights ${onnxBytes}`,
    );
    assert.equal(solo.backend.supports('tiny-sd'), true);
    assert.equal(solo.backend.supports('sdxl'), false);
  });

  test('returns a PNG of the requested size, with per-step progress', async () => {
    const steps: [number, number][] = [];
    const [image, ...rest] = await solo.backend.generate(tinyJob({ width: 96, height: 64, steps: 5 }), {
      onProgress: (step, total) => steps.push([step, total]),
      signal: new AbortController().signal,
    });
    assert.equal(rest.length, 0);
    assert.ok(image);
    const png = decode(image);
    assert.equal(png.width, 96);
    assert.equal(png.height, 64);
    assert.equal(image.width, 96);
    assert.equal(image.height, 64);
    assert.deepEqual(
      steps,
      [1, 2, 3, 4, 5].map((s) => [s, 5]),
    );
    // Random weights give a textured image: not one flat colour.
    const values = new Set<number>();
    for (let i = 0; i < png.data.length; i += 4) values.add(png.data[i] as number);
    assert.ok(values.size > 32, `the image has ${values.size} distinct red levels`);
  });

  test('the same seed gives the same image; another seed or prompt gives another', async () => {
    const a = (await solo.backend.generate(tinyJob({ seed: 7 }), noHooks()))[0] as GeneratedImage;
    const b = (await solo.backend.generate(tinyJob({ seed: 7 }), noHooks()))[0] as GeneratedImage;
    const c = (await solo.backend.generate(tinyJob({ seed: 8 }), noHooks()))[0] as GeneratedImage;
    const d = (
      await solo.backend.generate(tinyJob({ seed: 7, prompt: 'a bowl of fruit' }), noHooks())
    )[0] as GeneratedImage;
    assert.equal(sha(a), sha(b));
    assert.notEqual(sha(a), sha(c));
    assert.notEqual(sha(a), sha(d));
    assert.equal(a.seed, 7);
  });

  test('guidance at or below 1 skips classifier-free guidance and still gives a deterministic image', async () => {
    const guided = (
      await solo.backend.generate(tinyJob({ seed: 11, guidanceScale: 7.5 }), noHooks())
    )[0] as GeneratedImage;
    const plain = (
      await solo.backend.generate(tinyJob({ seed: 11, guidanceScale: 1 }), noHooks())
    )[0] as GeneratedImage;
    const again = (
      await solo.backend.generate(tinyJob({ seed: 11, guidanceScale: 1 }), noHooks())
    )[0] as GeneratedImage;
    assert.notEqual(sha(guided), sha(plain));
    assert.equal(sha(plain), sha(again));
  });

  test('numImages N gives N images with seeds seed+i, each the image that seed gives alone', async () => {
    const images = await solo.backend.generate(tinyJob({ seed: 500, numImages: 3 }), noHooks());
    assert.deepEqual(
      images.map((i) => i.seed),
      [500, 501, 502],
    );
    for (const [i, image] of images.entries()) {
      assert.equal(sha(image), sha(await aloneImage(tinyJob({ seed: 500 + i }))));
    }
  });

  test('rejects what it cannot run with the failure type the workflow handles', async () => {
    await assert.rejects(
      solo.backend.generate(tinyJob({ width: 60 }), noHooks()),
      (err: unknown) => err instanceof InferenceError && err.failureType === 'InvalidRequest',
    );
    await assert.rejects(
      solo.backend.generate(tinyJob({ loras: [{ name: 'style', weight: 1 }] }), noHooks()),
      (err: unknown) => err instanceof InferenceError && err.failureType === 'InvalidRequest',
    );
    await assert.rejects(
      solo.backend.generate(tinyJob({ model: 'sdxl' }), noHooks()),
      (err: unknown) => err instanceof InferenceError && err.failureType === 'ModelNotFound',
    );
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(solo.backend.generate(tinyJob(), noHooks(aborted.signal)), { name: 'AbortError' });
  });

  describe('dynamic batching', () => {
    let batched: { backend: OnnxBackend; close: () => Promise<void> };
    before(async () => {
      batched = await tinyBackend({ maxBatchSize: 8, maxQueueDelayMs: 20, preload: ['tiny-sd'] });
    });
    after(async () => {
      await batched.close();
    });

    test('8 concurrent compatible requests run in fewer passes than requests, each image equal to its unbatched one', async (t) => {
      const before = batched.backend.status().counters;
      const jobs = PROMPTS.map((_, i) => varied(i));
      const results = await Promise.all(jobs.map((job) => batched.backend.generate(job, noHooks())));
      const after = batched.backend.status().counters;
      const passes = (after.passes ?? 0) - (before.passes ?? 0);
      assert.ok(passes < jobs.length, `${jobs.length} requests ran in ${passes} passes`);
      assert.ok((after.maxBatchSeen ?? 0) > 1, `largest batch ${after.maxBatchSeen}`);
      assert.ok((after.batchedMembers ?? 0) - (before.batchedMembers ?? 0) >= 2);
      let identical = 0;
      for (const [i, job] of jobs.entries()) {
        const image = results[i]?.[0] as GeneratedImage;
        const reference = await aloneImage(job);
        // Contract: within 1/255 per channel of the unbatched image (onnxruntime may reorder float sums by batch).
        assert.ok(
          maxPixelDifference(image, reference) <= 1,
          `request ${i} differs from its unbatched image by more than 1/255`,
        );
        if (sha(image) === sha(reference)) identical++;
      }
      t.diagnostic(`${identical}/${jobs.length} batched PNGs byte-identical to unbatched; ${passes} pass(es)`);
    });

    test('incompatible requests (other size or steps) do not share a pass', async () => {
      const before = batched.backend.status().counters;
      await Promise.all([
        batched.backend.generate(tinyJob({ seed: 1 }), noHooks()),
        batched.backend.generate(tinyJob({ seed: 2, width: 128 }), noHooks()),
        batched.backend.generate(tinyJob({ seed: 3, steps: 3 }), noHooks()),
      ]);
      const after = batched.backend.status().counters;
      assert.equal((after.passes ?? 0) - (before.passes ?? 0), 3);
    });

    test('a cancelled request leaves its batch within one step; its batch mates finish with their own images', async (t) => {
      // Many steps, so the pass is still running when the cancel lands even on a loaded machine.
      const big = (i: number): InferenceJob => ({ ...varied(i), width: 256, height: 256, steps: 120 });
      const victim = new AbortController();
      let stepAtAbort = -1;
      const mates = [0, 2, 3].map((i) => batched.backend.generate(big(i), noHooks()));
      const cancelled = batched.backend.generate(big(1), {
        signal: victim.signal,
        onProgress: (step) => {
          if (step === 3 && stepAtAbort < 0) {
            stepAtAbort = step;
            victim.abort();
          }
        },
      });
      const droppedBefore = batched.backend.status().counters.droppedMembers ?? 0;
      let settledFirst: 'victim' | 'mates' | undefined;
      const victimError = await cancelled.then(
        () => assert.fail('the cancelled request resolved'),
        (err: Error) => {
          settledFirst ??= 'victim';
          return err;
        },
      );
      const mateImages = await Promise.all(mates).then((r) => {
        settledFirst ??= 'mates';
        return r;
      });
      assert.equal(victimError.name, 'AbortError');
      assert.equal(settledFirst, 'victim', 'the cancelled request settled while its batch mates were still running');
      // "cancelled at step F and left its pass after step D": F is the thread's own step count when the flag was set
      // (progress messages can trail the thread by several steps on a busy machine, so stepAtAbort is only a floor).
      const match = /at step (\d+) and left its pass after step (\d+) of 120/.exec(victimError.message);
      assert.ok(match, `abort message names both steps: ${victimError.message}`);
      const flaggedAt = Number(match[1]);
      const droppedAfter = Number(match[2]);
      t.diagnostic(
        `progress reported step ${stepAtAbort}; the thread was at step ${flaggedAt} when flagged and dropped it after step ${droppedAfter}`,
      );
      assert.ok(flaggedAt >= stepAtAbort, `the thread was at step ${flaggedAt}, behind the reported ${stepAtAbort}`);
      // The step running when the flag is set completes; the member leaves at the next step boundary.
      assert.ok(
        droppedAfter === flaggedAt || droppedAfter === flaggedAt + 1,
        `flagged at step ${flaggedAt}, dropped after step ${droppedAfter}`,
      );
      assert.equal((batched.backend.status().counters.droppedMembers ?? 0) - droppedBefore, 1);
      for (const [k, i] of [0, 2, 3].entries()) {
        const image = mateImages[k]?.[0] as GeneratedImage;
        assert.ok(maxPixelDifference(image, await aloneImage(big(i))) <= 1, `batch mate ${i} kept its image`);
      }
    });

    test('the main event loop stays responsive while passes run', async () => {
      const histogram = monitorEventLoopDelay({ resolution: 5 });
      histogram.enable();
      await Promise.all(
        PROMPTS.map((_, i) =>
          batched.backend.generate({ ...varied(i), width: 128, height: 128, steps: 20 }, noHooks()),
        ),
      );
      histogram.disable();
      const p99Ms = histogram.percentile(99) / 1e6;
      const maxMs = histogram.max / 1e6;
      // Generous: a blocked loop would show the whole run (seconds). Speed targets live in bench:inference.
      assert.ok(p99Ms < 100, `event-loop delay p99 ${p99Ms.toFixed(1)} ms`);
      assert.ok(maxMs < 500, `event-loop delay max ${maxMs.toFixed(1)} ms`);
    });
  });

  describe('out of memory', () => {
    test('a pass that runs out of memory is halved and retried until it fits; every image is still right', async () => {
      // Injected limit: a UNet run with more than 2 images fails with onnxruntime's allocation error text.
      const oom = await tinyBackend({
        maxBatchSize: 8,
        maxQueueDelayMs: 20,
        injectOomAboveMembers: 2,
        preload: ['tiny-sd'],
      });
      try {
        const jobs = PROMPTS.map((_, i) => varied(i));
        const results = await Promise.all(jobs.map((job) => oom.backend.generate(job, noHooks())));
        const counters = oom.backend.status().counters;
        assert.ok((counters.oomRetries ?? 0) >= 2, `8 -> 4 -> 2 takes two halvings, saw ${counters.oomRetries}`);
        assert.equal(counters.maxBatchSeen, 2);
        assert.equal(counters.passes, 4);
        for (const [i, job] of jobs.entries()) {
          assert.ok(maxPixelDifference(results[i]?.[0] as GeneratedImage, await aloneImage(job)) <= 1);
        }
      } finally {
        await oom.close();
      }
    });

    test('a single image that does not fit fails with OutOfMemory', async () => {
      const oom = await tinyBackend({ injectOomAboveMembers: 0 });
      try {
        await assert.rejects(
          oom.backend.generate(tinyJob(), noHooks()),
          (err: unknown) => err instanceof InferenceError && err.failureType === 'OutOfMemory',
        );
      } finally {
        await oom.close();
      }
    });
  });

  describe('model files', () => {
    test('fetches the model from its source into the cache on first use, verified', async () => {
      const fresh = await tinyBackend();
      try {
        const image = (await fresh.backend.generate(tinyJob({ seed: 99 }), noHooks()))[0] as GeneratedImage;
        assert.equal(sha(image), sha(await aloneImage(tinyJob({ seed: 99 }))));
        const registry = await ModelRegistry.load(REGISTRY_PATH);
        const files = registry.get('tiny-sd')?.files ?? [];
        assert.ok(files.length > 0);
        for (const file of files) {
          const cached = readFileSync(join(fresh.cacheDir, 'tiny-sd', file.path));
          assert.equal(createHash('sha256').update(cached).digest('hex'), file.sha256, file.path);
        }
        assert.equal(fresh.backend.status().counters.modelFilesFetched, files.length);
      } finally {
        await fresh.close();
      }
    });

    test('a corrupted cached file fails with ModelCorrupted, is reloaded from the source, and the retry succeeds', async () => {
      const worker = await tinyBackend();
      try {
        const unet = join(seedCache(worker.cacheDir), 'unet', 'model.onnx');
        const bytes = readFileSync(unet);
        bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
        writeFileSync(unet, bytes);

        await assert.rejects(
          worker.backend.generate(tinyJob({ seed: 5 }), noHooks()),
          (err: unknown) =>
            err instanceof InferenceError &&
            err.failureType === 'ModelCorrupted' &&
            err.message.includes('unet/model.onnx'),
        );
        assert.equal(worker.backend.status().loadedModels.length, 0, 'the corrupted model was not loaded');
        await worker.backend.modelReloadSettled('tiny-sd');
        const counters = worker.backend.status().counters;
        assert.equal(counters.modelCorruptions, 1);
        assert.equal(counters.modelReloads, 1);
        assert.equal(counters.modelReloadFailures, 0);

        // The workflow's retry (here or on another worker) now gets the right image.
        const image = (await worker.backend.generate(tinyJob({ seed: 5 }), noHooks()))[0] as GeneratedImage;
        assert.equal(sha(image), sha(await aloneImage(tinyJob({ seed: 5 }))));
      } finally {
        await worker.close();
      }
    });
  });
});
