// Denoising schedulers, following diffusers' definitions for the configuration keys of scheduler_config.json:
// EulerDiscreteScheduler (SD 1.x/2.x/XL; with `trailing` timestep spacing it is the scheduler SD-Turbo and
// SDXL-Turbo ship with for 1-4 steps) and LCMScheduler (latent consistency models, 2-8 steps). A step runs over a
// whole batch's latents in one loop; every element depends only on its own position, and the LCM's noise comes from
// each image's own stream, so a batch's members never mix.
import type { SeededGaussian } from './noise';

/** The keys of diffusers' scheduler_config.json that these schedulers read. */
export interface SchedulerConfig {
  readonly _class_name?: string;
  /** @default 1000 */
  readonly num_train_timesteps?: number;
  /** @default 0.0001 */
  readonly beta_start?: number;
  /** @default 0.02 */
  readonly beta_end?: number;
  /** @default 'linear' */
  readonly beta_schedule?: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  readonly trained_betas?: readonly number[] | null;
  /** @default 'epsilon' */
  readonly prediction_type?: 'epsilon' | 'v_prediction' | 'sample';
  /** @default 'linspace' */
  readonly timestep_spacing?: 'linspace' | 'leading' | 'trailing';
  /** @default 0 */
  readonly steps_offset?: number;
  /** @default false */
  readonly use_karras_sigmas?: boolean;
  /** LCM: @default 50 */
  readonly original_inference_steps?: number;
  /** LCM: @default 10 */
  readonly timestep_scaling?: number;
  /** LCM: @default true */
  readonly set_alpha_to_one?: boolean;
}

/**
 * Which scheduler a model runs: `auto` follows scheduler_config's `_class_name` (EulerDiscrete or LCM; any other class,
 * e.g. the PNDM config that SD 1.5 exports ship, runs Euler with the same noise schedule, as diffusers allows by
 * `EulerDiscreteScheduler.from_config`), `euler-trailing` forces the turbo spacing.
 */
export type SchedulerChoice = 'auto' | 'euler' | 'euler-trailing' | 'lcm';

export interface DenoisingScheduler {
  /** `euler` or `lcm`, plus the spacing for Euler, e.g. `euler:trailing`. */
  readonly name: string;
  /** The value passed to the UNet's `timestep` input at each step. */
  readonly timesteps: readonly number[];
  /** Standard deviation of the initial noise. */
  readonly initNoiseSigma: number;
  /** Factor the latents are multiplied by before the UNet at step `i` (Euler: 1/sqrt(sigma^2+1)). */
  inputScale(i: number): number;
  /**
   * Advances latents in place from the UNet's output at step `i`: one image with its noise stream, or a batch, the
   * latents of `noise.length` images back to back, image k drawing from noise[k].
   */
  step(
    i: number,
    modelOutput: Float32Array,
    sample: Float32Array,
    noise: SeededGaussian | readonly SeededGaussian[],
  ): void;
}

function linspace(start: number, end: number, n: number): number[] {
  if (n === 1) return [start];
  return Array.from({ length: n }, (_, i) => start + ((end - start) * i) / (n - 1));
}

function betaSchedule(c: SchedulerConfig): number[] {
  const T = c.num_train_timesteps ?? 1000;
  if (c.trained_betas && c.trained_betas.length > 0) return [...c.trained_betas];
  const start = c.beta_start ?? 0.0001;
  const end = c.beta_end ?? 0.02;
  switch (c.beta_schedule ?? 'linear') {
    case 'linear':
      return linspace(start, end, T);
    case 'scaled_linear':
      return linspace(Math.sqrt(start), Math.sqrt(end), T).map((b) => b * b);
    case 'squaredcos_cap_v2': {
      const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
      return Array.from({ length: T }, (_, i) => Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), 0.999));
    }
    default:
      throw new TypeError(`Unsupported beta_schedule ${JSON.stringify(c.beta_schedule)}`);
  }
}

function alphasCumprod(c: SchedulerConfig): number[] {
  let prod = 1;
  return betaSchedule(c).map((b) => (prod *= 1 - b));
}

/** Linear interpolation of `ys` (sampled at 0..n-1) at fractional `x`, like np.interp. */
function interp(x: number, ys: readonly number[]): number {
  if (x <= 0) return ys[0] as number;
  if (x >= ys.length - 1) return ys[ys.length - 1] as number;
  const lo = Math.floor(x);
  const w = x - lo;
  return (ys[lo] as number) * (1 - w) + (ys[lo + 1] as number) * w;
}

/** diffusers' `_sigma_to_t`: the (fractional) training timestep whose sigma is `sigma`, by log-sigma interpolation. */
function sigmaToT(sigma: number, trainSigmas: readonly number[]): number {
  const logSigma = Math.log(sigma);
  const logs = trainSigmas.map(Math.log);
  let low = 0;
  for (let i = 0; i < logs.length; i++) if (logSigma - (logs[i] as number) >= 0) low = i;
  low = Math.min(low, logs.length - 2);
  const high = low + 1;
  const lowLog = logs[low] as number;
  const highLog = logs[high] as number;
  const w = Math.min(1, Math.max(0, (lowLog - logSigma) / (lowLog - highLog)));
  return (1 - w) * low + w * high;
}

class EulerDiscreteScheduler implements DenoisingScheduler {
  readonly name: string;
  readonly timesteps: readonly number[];
  readonly initNoiseSigma: number;
  /** sigmas[i] for each step, then 0. */
  private readonly sigmas: readonly number[];
  private readonly prediction: NonNullable<SchedulerConfig['prediction_type']>;

  constructor(config: SchedulerConfig, steps: number) {
    const T = config.num_train_timesteps ?? 1000;
    const spacing = config.timestep_spacing ?? 'linspace';
    this.prediction = config.prediction_type ?? 'epsilon';
    this.name = `euler:${spacing}${config.use_karras_sigmas ? ':karras' : ''}`;
    const trainSigmas = alphasCumprod(config).map((a) => Math.sqrt((1 - a) / a));
    let timesteps: number[];
    if (spacing === 'linspace') timesteps = linspace(0, T - 1, steps).reverse();
    else if (spacing === 'leading') {
      const ratio = Math.floor(T / steps);
      timesteps = Array.from({ length: steps }, (_, i) => Math.round(i * ratio) + (config.steps_offset ?? 0)).reverse();
    } else if (spacing === 'trailing') {
      const ratio = T / steps;
      timesteps = Array.from({ length: steps }, (_, i) => Math.round(T - i * ratio) - 1);
    } else throw new TypeError(`Unsupported timestep_spacing ${JSON.stringify(spacing)}`);
    let sigmas = timesteps.map((t) => interp(t, trainSigmas));
    if (config.use_karras_sigmas) {
      // Karras et al. (2022) rho=7 spacing between the schedule's extreme sigmas.
      const rho = 7;
      const minInv = Math.min(...sigmas) ** (1 / rho);
      const maxInv = Math.max(...sigmas) ** (1 / rho);
      sigmas = linspace(0, 1, steps).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
      timesteps = sigmas.map((s) => sigmaToT(s, trainSigmas));
    }
    this.timesteps = timesteps;
    this.sigmas = [...sigmas, 0];
    const maxSigma = Math.max(...sigmas);
    this.initNoiseSigma =
      spacing === 'linspace' || spacing === 'trailing' ? maxSigma : Math.sqrt(maxSigma * maxSigma + 1);
  }

  inputScale(i: number): number {
    const sigma = this.sigmas[i] as number;
    return 1 / Math.sqrt(sigma * sigma + 1);
  }

  step(i: number, out: Float32Array, sample: Float32Array): void {
    const sigma = this.sigmas[i] as number;
    const dt = (this.sigmas[i + 1] as number) - sigma;
    // x_{i+1} = x_i + dt * (x_i - x0) / sigma, with x0 the model's estimate of the clean latents.
    if (this.prediction === 'epsilon') {
      for (let j = 0; j < sample.length; j++) sample[j] = (sample[j] as number) + (out[j] as number) * dt;
      return;
    }
    const cOut = -sigma / Math.sqrt(sigma * sigma + 1);
    const cSkip = 1 / (sigma * sigma + 1);
    for (let j = 0; j < sample.length; j++) {
      const x = sample[j] as number;
      const x0 = this.prediction === 'v_prediction' ? (out[j] as number) * cOut + x * cSkip : (out[j] as number);
      sample[j] = x + ((x - x0) / sigma) * dt;
    }
  }
}

class LcmScheduler implements DenoisingScheduler {
  readonly name = 'lcm';
  readonly timesteps: readonly number[];
  readonly initNoiseSigma = 1;
  private readonly alphas: readonly number[];
  private readonly finalAlpha: number;
  private readonly prediction: NonNullable<SchedulerConfig['prediction_type']>;
  private readonly timestepScaling: number;

  constructor(config: SchedulerConfig, steps: number) {
    const T = config.num_train_timesteps ?? 1000;
    const original = config.original_inference_steps ?? 50;
    if (steps > original)
      throw new RangeError(`LCM runs at most ${original} steps (original_inference_steps), got ${steps}`);
    this.alphas = alphasCumprod(config);
    this.finalAlpha = (config.set_alpha_to_one ?? true) ? 1 : (this.alphas[0] as number);
    this.prediction = config.prediction_type ?? 'epsilon';
    this.timestepScaling = config.timestep_scaling ?? 10;
    const k = Math.floor(T / original);
    const origin = Array.from({ length: original }, (_, i) => (i + 1) * k - 1).reverse();
    this.timesteps = Array.from({ length: steps }, (_, i) => origin[Math.floor((i * original) / steps)] as number);
  }

  inputScale(): number {
    return 1;
  }

  step(i: number, out: Float32Array, sample: Float32Array, noise: SeededGaussian | readonly SeededGaussian[]): void {
    const t = this.timesteps[i] as number;
    const last = i === this.timesteps.length - 1;
    const prevT = last ? t : (this.timesteps[i + 1] as number);
    const alpha = this.alphas[t] as number;
    const alphaPrev = prevT >= 0 ? (this.alphas[prevT] as number) : this.finalAlpha;
    const sigmaData = 0.5;
    const scaled = t * this.timestepScaling;
    const cSkip = sigmaData ** 2 / (scaled ** 2 + sigmaData ** 2);
    const cOut = scaled / Math.sqrt(scaled ** 2 + sigmaData ** 2);
    const sqrtA = Math.sqrt(alpha);
    const sqrtB = Math.sqrt(1 - alpha);
    for (let j = 0; j < sample.length; j++) {
      const x = sample[j] as number;
      const m = out[j] as number;
      const x0 =
        this.prediction === 'epsilon'
          ? (x - sqrtB * m) / sqrtA
          : this.prediction === 'v_prediction'
            ? sqrtA * x - sqrtB * m
            : m;
      sample[j] = cOut * x0 + cSkip * x;
    }
    // Consistency models jump to the clean estimate, then re-noise to the next timestep (except after the last step).
    if (!last) {
      const a = Math.sqrt(alphaPrev);
      const b = Math.sqrt(1 - alphaPrev);
      const streams = Array.isArray(noise) ? (noise as readonly SeededGaussian[]) : [noise as SeededGaussian];
      const size = sample.length / streams.length;
      streams.forEach((stream, k) => {
        for (let j = k * size; j < (k + 1) * size; j++) sample[j] = a * (sample[j] as number) + b * stream.next();
      });
    }
  }
}

export function resolveSchedulerKind(
  choice: SchedulerChoice,
  config: SchedulerConfig,
): 'euler' | 'euler-trailing' | 'lcm' {
  if (choice !== 'auto') return choice;
  return config._class_name === 'LCMScheduler' ? 'lcm' : 'euler';
}

export function createScheduler(choice: SchedulerChoice, config: SchedulerConfig, steps: number): DenoisingScheduler {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const kind = resolveSchedulerKind(choice, config);
  if (kind === 'lcm') return new LcmScheduler(config, steps);
  if (kind === 'euler-trailing') return new EulerDiscreteScheduler({ ...config, timestep_spacing: 'trailing' }, steps);
  return new EulerDiscreteScheduler(config, steps);
}
