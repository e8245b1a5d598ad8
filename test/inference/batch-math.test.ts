// The host-side arithmetic of a batched pass and the image it ends in: a step over a whole batch gives each member
// exactly what it gets alone, and the PNG encoder writes the pixels diffusers would (same clamping and rounding).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { SeededGaussian } from '../../inference/onnx/noise';
import { defaultPngThreads } from '../../inference/onnx/options';
import { encodePlanesPng } from '../../inference/onnx/png';
import { createScheduler, type SchedulerConfig } from '../../inference/onnx/schedulers';
import { applyGuidance, contextTensor, fillSample } from '../../inference/onnx/tensors';

const SIZE = 48;
const TURBO: SchedulerConfig = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 };

function rows(n: number, seed: number): Float32Array {
  return new SeededGaussian(seed).fill(new Float32Array(n * SIZE));
}

describe('batched step maths', () => {
  for (const [kind, config] of [
    ['euler', { ...TURBO, timestep_spacing: 'trailing' }],
    ['lcm', { ...TURBO, _class_name: 'LCMScheduler' }],
  ] as const) {
    test(`${kind}: a batch of 3 advances each member exactly as it advances alone`, () => {
      const scheduler = createScheduler('auto', config, 3);
      const batch = rows(3, 1);
      const alone = [0, 1, 2].map((k) => batch.slice(k * SIZE, (k + 1) * SIZE));
      const batchNoise = [11, 12, 13].map((s) => new SeededGaussian(s));
      const aloneNoise = [11, 12, 13].map((s) => new SeededGaussian(s));
      for (let i = 0; i < 3; i++) {
        const prediction = rows(3, 100 + i);
        scheduler.step(i, prediction, batch, batchNoise);
        alone.forEach((latents, k) =>
          scheduler.step(i, prediction.subarray(k * SIZE, (k + 1) * SIZE), latents, aloneNoise[k] as SeededGaussian),
        );
      }
      alone.forEach((latents, k) => assert.deepEqual(batch.subarray(k * SIZE, (k + 1) * SIZE), latents));
    });
  }

  test('the UNet sample holds the scaled latents twice under guidance; guidance combines uncond and cond rows', () => {
    const latents = rows(2, 3);
    const sample = new Float32Array(4 * SIZE);
    fillSample(sample, latents, 0.5, true);
    const scaled = latents.map((x) => x * 0.5);
    assert.deepEqual(sample.subarray(0, 2 * SIZE), scaled);
    assert.deepEqual(sample.subarray(2 * SIZE), scaled);
    const out = rows(4, 4);
    const guided = new Float32Array(2 * SIZE);
    applyGuidance(out, 7.5, guided);
    const expected = Float32Array.from(guided, (_, j) => {
      const u = out[j] as number;
      return u + 7.5 * ((out[2 * SIZE + j] as number) - u);
    });
    assert.deepEqual(guided, expected);
  });

  test('after a member leaves, the context keeps the others rows in UNet order (uncond first)', () => {
    // 3 members encoded under guidance: rows 0-2 negative prompts, 3-5 prompts; each row is its index repeated.
    const hidden = Float32Array.from({ length: 6 * 2 }, (_, i) => Math.floor(i / 2));
    const context = contextTensor(hidden, 3, [0, 2], true, 1, 2);
    assert.deepEqual(context.dims, [4, 1, 2]);
    assert.deepEqual([...(context.data as Float32Array)], [0, 0, 2, 2, 3, 3, 5, 5]);
  });
});

describe('PNG encoding', () => {
  test('float planes become RGB pixels as diffusers maps them: clamped, rounded half to even', () => {
    const [width, height] = [5, 3];
    const plane = width * height;
    const planes = new Float32Array(3 * plane);
    // [-1, 1] -> x * 127.5 + 127.5; exact halves (x * 127.5 = k + 0.5) round to even; beyond the range clamps.
    const values = [-1, 1, 0, -2, 2, 1 / 255 - 1, 3 / 255 - 1, 0.25, -0.6, 0.999];
    for (let i = 0; i < planes.length; i++) planes[i] = values[i % values.length] as number;
    const png = PNG.sync.read(encodePlanesPng(planes, width, height));
    assert.deepEqual([png.width, png.height], [width, height]);
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const expected = new Uint8ClampedArray([(planes[c * plane + p] as number) * 127.5 + 127.5])[0];
        assert.equal(png.data[p * 4 + c], expected, `pixel ${p} channel ${c}`);
      }
      assert.equal(png.data[p * 4 + 3], 255, 'opaque');
    }
  });

  test('PNG threads default to one per 4 cores, 1 to 4', () => {
    assert.deepEqual([1, 2, 8, 16, 64].map(defaultPngThreads), [1, 1, 2, 4, 4]);
  });
});
