// The SIMULATED GPU BACKEND: real PNGs of the requested size that depend only on (size, seed, prompt), a latency
// that follows the GPU's FP16 throughput and the model's work per step, per-step progress, and abort within a step.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatedGpuBackend, modelledStepMs, renderSimulatedImage } from '../../inference/simulated';
import type { InferenceJob } from '../../inference/backend';
import { decodePng } from '../helpers/png';

function job(fields: Partial<InferenceJob> = {}): InferenceJob {
  return {
    requestId: 'req-1',
    model: 'sdxl',
    prompt: 'a lighthouse at dusk',
    negativePrompt: '',
    width: 256,
    height: 256,
    steps: 4,
    seed: 7,
    numImages: 1,
    guidanceScale: 7.5,
    loras: [],
    controlnets: [],
    ...fields,
  };
}

const noHooks = () => ({ onProgress: () => undefined, signal: new AbortController().signal });

describe('simulated GPU backend', () => {
  test('renders a valid PNG of any requested size, the same bytes for the same seed and prompt', () => {
    const a = renderSimulatedImage(320, 200, 7, 'a lighthouse at dusk');
    const png = decodePng(a);
    assert.deepEqual([png.width, png.height], [320, 200]);
    assert.ok(a.equals(renderSimulatedImage(320, 200, 7, 'a lighthouse at dusk')), 'deterministic');
    assert.ok(!a.equals(renderSimulatedImage(320, 200, 8, 'a lighthouse at dusk')), 'the seed matters');
    assert.ok(!a.equals(renderSimulatedImage(320, 200, 7, 'a lighthouse at dawn')), 'the prompt matters');
    const distinctPixels = new Set<number>();
    for (let i = 0; i < png.data.length; i += 4 * 97) distinctPixels.add(png.data.readUInt32BE(i));
    assert.ok(distinctPixels.size > 50, `an image, not a flat fill (${distinctPixels.size} colours sampled)`);
  });

  test("models step time from GPU FP16 throughput and the model's work per step", () => {
    // SDXL at 1 MPx on an A10G (125 TFLOPS): 12 TFLOP / (125 x 0.35) = 274 ms per step.
    assert.ok(
      Math.abs(modelledStepMs({ model: 'sdxl', width: 1000, height: 1000, numImages: 1 }, 'a10g') - 274.3) < 0.5,
    );
    // The H100 (989 TFLOPS) is ~7.9x faster; Flux costs 3x SDXL per step; a batch of 4 costs 4x; 2K costs 4x 1K.
    const base = modelledStepMs({ model: 'sdxl', width: 1024, height: 1024, numImages: 1 }, 'a10g');
    assert.ok(
      Math.abs(base / modelledStepMs({ model: 'sdxl', width: 1024, height: 1024, numImages: 1 }, 'h100') - 989 / 125) <
        1e-9,
    );
    assert.ok(
      Math.abs(modelledStepMs({ model: 'flux', width: 1024, height: 1024, numImages: 1 }, 'a10g') / base - 3) < 1e-9,
    );
    assert.ok(
      Math.abs(modelledStepMs({ model: 'sdxl', width: 1024, height: 1024, numImages: 4 }, 'a10g') / base - 4) < 1e-9,
    );
    assert.ok(
      Math.abs(modelledStepMs({ model: 'sdxl', width: 2048, height: 2048, numImages: 1 }, 'a10g') / base - 4) < 1e-9,
    );
  });

  test('takes the modelled time divided by the speed-up, reporting every step', async () => {
    const stepMs = modelledStepMs({ model: 'sdxl', width: 256, height: 256, numImages: 1 }, 'l4');
    const backend = new SimulatedGpuBackend({ gpuType: 'l4', speedup: stepMs / 20 }); // 20 ms per step
    const steps: number[] = [];
    const started = performance.now();
    const images = await backend.generate(job({ steps: 10 }), {
      onProgress: (s) => steps.push(s),
      signal: new AbortController().signal,
    });
    const elapsed = performance.now() - started;
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(elapsed >= 195 && elapsed < 1000, `10 steps of 20 ms took ${elapsed.toFixed(0)} ms`);
    assert.equal(images.length, 1);
  });

  test('a batch returns one image per seed (seed, seed+1, ...), each the same as a single request with that seed', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a100-80gb', speedup: 1e6 });
    const batch = await backend.generate(job({ numImages: 3, seed: 10 }), noHooks());
    assert.deepEqual(
      batch.map((i) => i.seed),
      [10, 11, 12],
    );
    const single = await backend.generate(job({ seed: 11 }), noHooks());
    assert.ok(batch[1]?.png.equals(single[0]?.png as Buffer));
    assert.deepEqual(backend.status().counters, {
      jobs: 2,
      images: 4,
      steps: 8,
      cancelled: 0,
      active: 0,
      queued: 0,
      yielded: 0,
    });
    assert.deepEqual(
      backend.status().loadedModels.map((m) => m.model),
      ['sdxl'],
    );
  });

  test('an abort stops it within one step with an AbortError', async () => {
    const stepMs = 100;
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: modelledStepMs(job(), 'a10g') / stepMs });
    const controller = new AbortController();
    let abortedAt = 0;
    const run = backend.generate(job({ steps: 100 }), {
      signal: controller.signal,
      onProgress: (step) => {
        if (step === 3) {
          abortedAt = performance.now();
          controller.abort();
        }
      },
    });
    await assert.rejects(run, { name: 'AbortError' });
    assert.ok(performance.now() - abortedAt < stepMs, 'within one step');
    assert.equal(backend.status().counters.steps, 3);
    assert.equal(backend.status().counters.cancelled, 1);
  });

  test('like one GPU, it runs one job at a time, in arrival order', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: modelledStepMs(job(), 'a10g') / 5 });
    const log: string[] = [];
    const hooks = (name: string) => ({
      signal: new AbortController().signal,
      onProgress: (step: number) => log.push(`${name}${step}`),
    });
    const runs = [
      backend.generate(job({ steps: 3 }), hooks('a')),
      backend.generate(job({ steps: 3 }), hooks('b')),
      backend.generate(job({ steps: 2 }), hooks('c')),
    ];
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([backend.status().counters.active, backend.status().counters.queued], [1, 2]);
    await Promise.all(runs);
    assert.deepEqual(log, ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'c1', 'c2']);
    assert.deepEqual(
      [backend.status().counters.active, backend.status().counters.queued, backend.status().counters.jobs],
      [0, 0, 3],
    );
  });

  test('queued jobs take the GPU by Temporal priority, then arrival: a later turbo job passes earlier relax ones', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: modelledStepMs(job(), 'a10g') / 5 });
    const order: string[] = [];
    const hooks = (name: string) => ({
      signal: new AbortController().signal,
      onProgress: (step: number) => step === 1 && order.push(name),
    });
    const runs = [
      backend.generate(job({ steps: 2, priority: 5 }), hooks('relax-running')),
      backend.generate(job({ steps: 1, priority: 5 }), hooks('relax-1')),
      backend.generate(job({ steps: 1, priority: 5 }), hooks('relax-2')),
      backend.generate(job({ steps: 1, priority: 3 }), hooks('fast')),
      backend.generate(job({ steps: 1, priority: 1 }), hooks('turbo')),
      backend.generate(job({ steps: 1 }), hooks('default')),
    ];
    await Promise.all(runs);
    assert.deepEqual(order, ['relax-running', 'turbo', 'fast', 'default', 'relax-1', 'relax-2']);
  });

  test('a job cancelled while queued rejects at once with an AbortError and the queue moves on', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: modelledStepMs(job(), 'a10g') / 20 });
    const log: string[] = [];
    const hooks = (name: string, signal = new AbortController().signal) => ({
      signal,
      onProgress: (step: number) => log.push(`${name}${step}`),
    });
    const first = backend.generate(job({ steps: 3 }), hooks('a'));
    const controller = new AbortController();
    const queued = backend.generate(job({ steps: 3 }), hooks('b', controller.signal));
    const third = backend.generate(job({ steps: 1 }), hooks('c'));
    await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await assert.rejects(queued, { name: 'AbortError' });
    assert.deepEqual(
      log.filter((e) => e.startsWith('c') || e.startsWith('b')),
      [],
      'rejected before the job ahead finished, without running',
    );
    await Promise.all([first, third]);
    assert.deepEqual(log, ['a1', 'a2', 'a3', 'c1']);
    assert.deepEqual([backend.status().counters.cancelled, backend.status().counters.jobs], [1, 2]);
  });

  test('serves the four GPU models only, and refuses bad settings', () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g' });
    assert.deepEqual(
      ['sdxl', 'sdxl-turbo', 'sd3', 'flux', 'tiny-sd'].map((m) => backend.supports(m as never)),
      [true, true, true, true, false],
    );
    assert.throws(() => new SimulatedGpuBackend({ gpuType: 'a10g', speedup: 0 }), TypeError);
    assert.throws(() => new SimulatedGpuBackend({ gpuType: 'a10g', utilization: 1.5 }), TypeError);
  });
});
