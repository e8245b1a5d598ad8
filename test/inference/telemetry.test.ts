// What the inference backends tell the GPU worker's metrics (inference/telemetry.ts, workers/gpu-metrics.ts): busy time
// over a sliding window, the simulated GPU's modelled memory, the passes each backend runs, and, on the real ONNX
// backend on CPU, batch sizes, duty cycle and checksum failures by model, with no GPU memory figure at all.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InferenceError } from '../../inference/backend';
import { SimulatedGpuBackend } from '../../inference/simulated';
import { SimulatedGpuMemory } from '../../inference/simulated-memory';
import { BusyMeter, type PassRecord } from '../../inference/telemetry';
import { createLogger } from '../../runtime/logger';
import { createProcessRegistry } from '../../runtime/metrics';
import { parseNvidiaSmiMemory, registerGpuWorkerMetrics } from '../../workers/gpu-metrics';
import { noHooks, seedCache, tinyBackend, tinyJob } from './fixtures';

const GIB = 2 ** 30;

/** Equal to `gib` GiB within a kibibyte (the model's figures are fractions of GiB). */
function assertGib(bytes: number | undefined, gib: number, message?: string): void {
  assert.ok(bytes !== undefined && Math.abs(bytes - gib * GIB) < 1024, `${message ?? ''} ${bytes} B is not ${gib} GiB`);
}

describe('BusyMeter', () => {
  test('the busy share of lanes over the last window, counting passes still running', () => {
    let now = 0;
    const meter = new BusyMeter(2, 10_000, () => now);
    now = 1_000;
    const first = meter.begin();
    now = 5_000;
    first(); // 4 s on one lane
    first(); // a second end changes nothing
    const second = meter.begin();
    now = 10_000; // 5 s so far, still running
    assert.equal(meter.fraction(), (4_000 + 5_000) / (2 * 10_000));
    now = 16_000; // the window is now [6 s, 16 s]: nothing of the first pass, 10 s of the second
    assert.equal(meter.fraction(), 10_000 / 20_000);
    second();
    now = 40_000;
    assert.equal(meter.fraction(), 0, 'idle for a whole window');
  });

  test('a meter younger than its window is measured over its life so far', () => {
    let now = 100;
    const meter = new BusyMeter(1, 60_000, () => now);
    const end = meter.begin();
    now = 1_100;
    end();
    now = 2_100;
    assert.equal(meter.fraction(), 0.5);
  });
});

describe('the simulated GPU memory model', () => {
  const job = (model: 'sdxl' | 'sdxl-turbo' | 'sd3', size: number, numImages: number) => ({
    model,
    width: size,
    height: size,
    numImages,
    loras: [],
    controlnets: [],
  });

  test("total is the GPU type's VRAM; used is the resident models' weights plus the running job, as routing sizes them", () => {
    const memory = new SimulatedGpuMemory('a10g');
    assert.deepEqual(memory.snapshot(), { usedBytes: 0, totalBytes: 24 * GIB });
    // sdxl: 12 GiB in the catalogue, 65% weights (7.8); two 1024x1024 images add 2 x 35% activations (8.4).
    memory.jobStarted(job('sdxl', 1024, 2));
    assertGib(memory.snapshot().usedBytes, 16.2, 'sdxl running');
    memory.jobEnded();
    assertGib(memory.snapshot().usedBytes, 7.8, 'the weights stay loaded between jobs');
    memory.jobStarted(job('sdxl-turbo', 512, 1));
    memory.jobEnded();
    assertGib(memory.snapshot().usedBytes, 7.8 + 6.5, 'both models fit in 24 GiB');
    // sd3 (16.9 GiB of weights, 9.1 of activations) evicts both others, and the device is full.
    memory.jobStarted(job('sd3', 1024, 1));
    assert.equal(memory.snapshot().usedBytes, 24 * GIB, 'never above the device');
    memory.jobEnded();
    assertGib(memory.snapshot().usedBytes, 16.9, 'only sd3 is left');
  });
});

describe('backend telemetry', () => {
  test('the simulated GPU reports each job as one pass, its busy time and its modelled memory while it runs', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'h100', speedup: 20 });
    const passes: PassRecord[] = [];
    backend.telemetry.onPass((pass) => passes.push(pass));
    let during: number | undefined;
    try {
      const job = { ...tinyJob(), model: 'sdxl-turbo' as const, width: 256, height: 256, steps: 4, numImages: 3 };
      await backend.generate(job, {
        ...noHooks(),
        onProgress: () => (during ??= backend.telemetry.deviceMemory().usedBytes),
      });
      assert.deepEqual(passes, [{ model: 'sdxl-turbo', images: 3 }]);
      // sdxl-turbo: 6.5 GiB of weights; three images at or under its default size, 3 x 3.5 GiB of activations.
      assertGib(during, 6.5 + 10.5, 'while the job runs');
      assertGib(backend.telemetry.deviceMemory().usedBytes, 6.5, 'after it');
      assert.equal(backend.telemetry.deviceMemory().totalBytes, 80 * GIB);
      const busy = backend.telemetry.busyFraction();
      assert.ok(busy > 0 && busy <= 1, `busy ${busy}`);
    } finally {
      await backend.close();
    }
  });

  test('the ONNX backend on CPU: batch sizes, duty cycle, corruptions by model, and no GPU memory figure', async () => {
    const worker = await tinyBackend();
    try {
      const registry = createProcessRegistry({ process: 'gpu-worker', region: 'test-region' });
      registerGpuWorkerMetrics(registry, {
        gpuType: 'l4',
        backends: [worker.backend],
        onnx: { executionProviders: ['cpu'], deviceIds: [0] },
        log: createLogger('telemetry-test').child({}, { level: 'silent' }),
      });
      // A corrupted cached file: one checksum failure, then the reloaded model serves two requests in one pass.
      const unet = join(seedCache(worker.cacheDir), 'unet', 'model.onnx');
      const bytes = readFileSync(unet);
      bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
      writeFileSync(unet, bytes);
      await assert.rejects(
        worker.backend.generate(tinyJob(), noHooks()),
        (err: unknown) => err instanceof InferenceError && err.failureType === 'ModelCorrupted',
      );
      await worker.backend.modelReloadSettled('tiny-sd');
      await Promise.all([
        worker.backend.generate(tinyJob({ seed: 1 }), noHooks()),
        worker.backend.generate(tinyJob({ seed: 2 }), noHooks()),
      ]);

      const text = await registry.metrics();
      const labels = 'model="tiny-sd",gpu_type="l4",backend="onnx:cpu"';
      assert.match(text, new RegExp(`^atelier_batch_size_sum\\{[^}]*${labels}\\} 2$`, 'm'), 'one pass of two images');
      assert.match(text, new RegExp(`^atelier_batch_size_count\\{[^}]*${labels}\\} 1$`, 'm'));
      const duty = /^atelier_gpu_duty_cycle\{gpu_type="l4",backend="onnx:cpu"[^}]*\} (\S+)$/m.exec(text);
      assert.ok(duty && Number(duty[1]) > 0 && Number(duty[1]) <= 1, `duty cycle: ${duty?.[1]}`);
      assert.match(text, /^atelier_model_corruptions_total\{model="tiny-sd"[^}]*\} 1$/m);
      assert.doesNotMatch(text, /atelier_gpu_memory_used_bytes/, 'no device figure on CPU: nothing is made up');
      assert.doesNotMatch(text, /atelier_gpu_memory_total_bytes/);
    } finally {
      await worker.close();
    }
  });

  test("nvidia-smi's memory lines are summed over the worker's devices, in bytes", () => {
    assert.deepEqual(parseNvidiaSmiMemory('1024, 81559\n2048, 81559\n'), {
      usedBytes: 3072 * 2 ** 20,
      totalBytes: 2 * 81559 * 2 ** 20,
    });
    assert.equal(parseNvidiaSmiMemory('[N/A], [N/A]\n'), undefined);
    assert.equal(parseNvidiaSmiMemory(''), undefined);
  });
});
