// Schedulers and seeded noise: the timesteps diffusers produces for the same configuration, and denoising that
// recovers the clean latents when the model predicts the noise exactly (which is what the update rules promise).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SeededGaussian } from '../../inference/onnx/noise';
import { createScheduler, type SchedulerConfig } from '../../inference/onnx/schedulers';

/** SD 1.5's scheduler_config.json (EulerDiscrete as shipped with the diffusers pipeline). */
const SD15: SchedulerConfig = {
  _class_name: 'EulerDiscreteScheduler',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  steps_offset: 1,
  timestep_spacing: 'leading',
};
/** SD-Turbo's: the same betas with trailing spacing. */
const TURBO: SchedulerConfig = { ...SD15, timestep_spacing: 'trailing', steps_offset: 0 };
const LCM: SchedulerConfig = {
  ...SD15,
  _class_name: 'LCMScheduler',
  original_inference_steps: 50,
  timestep_scaling: 10,
  set_alpha_to_one: true,
};

function alphasCumprod(): number[] {
  let prod = 1;
  return Array.from({ length: 1000 }, (_, i) => {
    const b = (Math.sqrt(0.00085) + ((Math.sqrt(0.012) - Math.sqrt(0.00085)) * i) / 999) ** 2;
    return (prod *= 1 - b);
  });
}

describe('schedulers', () => {
  test('Euler timesteps match diffusers for leading, trailing and linspace spacing', () => {
    assert.deepEqual(createScheduler('auto', SD15, 4).timesteps, [751, 501, 251, 1]);
    assert.deepEqual(createScheduler('auto', TURBO, 4).timesteps, [999, 749, 499, 249]);
    assert.deepEqual(createScheduler('auto', TURBO, 1).timesteps, [999]);
    assert.deepEqual(createScheduler('euler-trailing', SD15, 2).timesteps, [999, 499]);
    assert.deepEqual(
      createScheduler('auto', { ...SD15, timestep_spacing: 'linspace' }, 4).timesteps,
      [999, 666, 333, 0],
    );
  });

  test('initial noise sigma is SD’s sigma_max (14.6146) for trailing spacing, sqrt(sigma^2+1) for leading', () => {
    assert.ok(Math.abs(createScheduler('auto', TURBO, 4).initNoiseSigma - 14.6146) < 1e-3);
    const leading = createScheduler('auto', SD15, 4);
    const sigma751 = Math.sqrt((1 - (alphasCumprod()[751] as number)) / (alphasCumprod()[751] as number));
    assert.ok(Math.abs(leading.initNoiseSigma - Math.sqrt(sigma751 ** 2 + 1)) < 1e-9);
  });

  test('LCM timesteps match diffusers (4 steps of 50 original: 999, 759, 499, 259)', () => {
    assert.deepEqual(createScheduler('auto', LCM, 4).timesteps, [999, 759, 499, 259]);
    assert.deepEqual(createScheduler('lcm', SD15, 1).timesteps, [999]);
  });

  for (const [name, config, steps] of [
    ['Euler leading', SD15, 6],
    ['Euler trailing (turbo)', TURBO, 2],
    ['Euler with Karras sigmas', { ...SD15, use_karras_sigmas: true }, 8],
  ] as const) {
    test(`${name}: an exact noise prediction denoises back to the clean latents`, () => {
      const scheduler = createScheduler('auto', config, steps);
      const clean = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 0.8);
      const noise = new SeededGaussian(3).fill(new Float32Array(64));
      const sample = clean.map((c, i) => c + (noise[i] as number) * scheduler.initNoiseSigma);
      for (let i = 0; i < steps; i++) {
        // The scheduler's sigma at this step, from the input scaling 1/sqrt(sigma^2 + 1) it applies.
        const sigma = Math.sqrt(1 / scheduler.inputScale(i) ** 2 - 1);
        // A perfect denoiser: the epsilon whose clean estimate x - sigma * eps is exactly the clean latents.
        const eps = sample.map((x, j) => (x - (clean[j] as number)) / sigma);
        scheduler.step(i, eps, sample, new SeededGaussian(0));
      }
      for (let j = 0; j < clean.length; j++)
        assert.ok(Math.abs((sample[j] as number) - (clean[j] as number)) < 1e-4, `latent ${j}`);
    });
  }

  test('LCM: an exact noise prediction lands on the clean latents after the last step', () => {
    const scheduler = createScheduler('auto', LCM, 4);
    const alphas = alphasCumprod();
    const clean = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i) * 0.5);
    const rng = new SeededGaussian(9);
    const sample = new SeededGaussian(4).fill(new Float32Array(64));
    for (let i = 0; i < 4; i++) {
      const a = alphas[scheduler.timesteps[i] as number] as number;
      const eps = sample.map((x, j) => (x - Math.sqrt(a) * (clean[j] as number)) / Math.sqrt(1 - a));
      scheduler.step(i, eps, sample, rng);
    }
    for (let j = 0; j < clean.length; j++)
      assert.ok(Math.abs((sample[j] as number) - (clean[j] as number)) < 1e-3, `latent ${j}`);
  });
});

describe('seeded noise', () => {
  test('the same seed gives the same stream; different seeds, including ones above 2^32, differ', () => {
    const a = new SeededGaussian(42).fill(new Float32Array(1000));
    const b = new SeededGaussian(42).fill(new Float32Array(1000));
    assert.deepEqual(a, b);
    const low = new SeededGaussian(5).fill(new Float32Array(16));
    const high = new SeededGaussian(5 + 2 ** 32).fill(new Float32Array(16));
    assert.notDeepEqual(low, high);
    assert.notDeepEqual(new SeededGaussian(43).fill(new Float32Array(16)), a.subarray(0, 16));
  });

  test('draws are standard normal', () => {
    const draws = new SeededGaussian(7).fill(new Float32Array(200_000));
    let sum = 0;
    let sq = 0;
    for (const x of draws) {
      sum += x;
      sq += x * x;
    }
    const mean = sum / draws.length;
    const std = Math.sqrt(sq / draws.length - mean * mean);
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(std - 1) < 0.01, `std ${std}`);
  });

  test('rejects seeds that are not non-negative safe integers', () => {
    assert.throws(() => new SeededGaussian(-1), RangeError);
    assert.throws(() => new SeededGaussian(1.5), RangeError);
  });
});
