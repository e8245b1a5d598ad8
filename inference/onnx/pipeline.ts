// The Stable Diffusion text-to-image pipeline over a diffusers ONNX export: tokenize, encode the prompts, denoise
// with classifier-free guidance, decode the latents with the VAE into RGBA pixels (PNG encoding happens in the PNG
// encoder threads). It runs inside an inference thread
// (inference-thread.ts), never on the main thread: onnxruntime's session.run blocks the thread that calls it.
//
// One call runs one batched pass: its members share the model, size, steps, guidance and scheduler; each member has
// its own prompt and seed. A member's latents depend only on its own seed and prompt, so it gets the same image
// whatever else is in the pass, and a member cancelled between steps is dropped without touching the others.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { ClipPromptTokenizer } from './clip-tokenizer';
import { SeededGaussian } from './noise';
import { toRgba } from './png';
import { createScheduler, resolveSchedulerKind, type SchedulerChoice, type SchedulerConfig } from './schedulers';

/** SD 1.x/2.x VAE latent scaling; SDXL exports carry 0.13025 in vae_decoder/config.json. */
export const DEFAULT_VAE_SCALING_FACTOR = 0.18215;
/** Pixels per latent cell: every SD-family VAE downsamples 8x. */
export const VAE_SCALE = 8;
const LATENT_CHANNELS = 4;

export const EXPORT_MODEL_FILES = ['text_encoder/model.onnx', 'unet/model.onnx', 'vae_decoder/model.onnx'] as const;

export interface PipelineLoadOptions {
  /** Root of the export (the folder holding model_index.json). */
  readonly dir: string;
  readonly scheduler: SchedulerChoice;
  /** Overrides vae_decoder/config.json's scaling_factor. */
  readonly vaeScalingFactor?: number;
  readonly sessionOptions: ort.InferenceSession.SessionOptions;
}

export interface PassMember {
  readonly memberId: number;
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly seed: number;
}

export interface PassParams {
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
}

export interface PassControl {
  /** Polled before every denoising step and before decoding. */
  isCancelled(memberId: number): boolean;
  /** After each denoising step (1-based) with the members still in the pass. */
  onStep(step: number, totalSteps: number, activeMemberIds: readonly number[]): void;
  /** A cancelled member left the pass having completed `completedSteps` steps. */
  onDropped(memberId: number, completedSteps: number): void;
  /** Called before each UNet run with the number of images in it; may throw (fault injection). */
  beforeUnet?(members: number): void;
}

export interface PassImage {
  readonly memberId: number;
  /** width x height x 4 bytes, RGBA. */
  readonly rgba: Uint8Array;
}

/** Wall-clock split of one pass, milliseconds. */
export interface PassTimings {
  readonly totalMs: number;
  /** Time inside session.run, all three models. */
  readonly sessionRunMs: number;
  readonly textEncoderMs: number;
  readonly unetMs: number;
  readonly vaeMs: number;
  /** Float planes to RGBA. */
  readonly pixelsMs: number;
}

export interface PassResult {
  readonly images: PassImage[];
  readonly timings: PassTimings;
}

/** An export whose models lack the inputs or outputs of the standard layout. */
export class IncompatibleExportError extends Error {
  override readonly name = 'IncompatibleExportError';
}

type TensorMeta = ort.InferenceSession.TensorValueMetadata;

function tensorInput(session: ort.InferenceSession, name: string, model: string, required: true): TensorMeta;
function tensorInput(session: ort.InferenceSession, name: string, model: string, required: false): TensorMeta | undefined;
function tensorInput(session: ort.InferenceSession, name: string, model: string, required: boolean): TensorMeta | undefined {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta) {
    if (required) throw new IncompatibleExportError(`${model}: no input named ${name} (inputs: ${session.inputNames.join(', ')})`);
    return undefined;
  }
  if (!meta.isTensor) throw new IncompatibleExportError(`${model}: input ${name} is not a tensor`);
  return meta;
}

function outputName(session: ort.InferenceSession, preferred: string): string {
  return session.outputNames.includes(preferred) ? preferred : (session.outputNames[0] as string);
}

/** The UNet's `timestep` input takes float32 in recent diffusers exports and int64 in older and some optimum ones. */
function timestepTensor(meta: TensorMeta, value: number, batch: number): ort.Tensor {
  const first = meta.shape[0];
  const length = meta.shape.length === 0 ? 0 : typeof first === 'number' && first > 0 ? first : batch;
  const dims = meta.shape.length === 0 ? [] : [length];
  const count = Math.max(1, length);
  if (meta.type === 'int64') return new ort.Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(value))), dims);
  if (meta.type === 'float32') return new ort.Tensor('float32', new Float32Array(count).fill(value), dims);
  throw new IncompatibleExportError(`unet: timestep dtype ${meta.type} is not supported (float32 or int64)`);
}

/** diffusers' get_guidance_scale_embedding, for LCM-distilled UNets that take the guidance as `timestep_cond`. */
function guidanceEmbedding(guidanceScale: number, dim: number): Float32Array {
  const out = new Float32Array(dim);
  const half = Math.floor(dim / 2);
  const w = (guidanceScale - 1) * 1000;
  const k = Math.log(10000) / (half - 1);
  for (let i = 0; i < half; i++) {
    out[i] = Math.sin(w * Math.exp(-k * i));
    out[half + i] = Math.cos(w * Math.exp(-k * i));
  }
  return out;
}

interface ActiveMember {
  readonly member: PassMember;
  readonly noise: SeededGaussian;
  readonly latents: Float32Array;
  cond: Float32Array;
  uncond: Float32Array | undefined;
}

export class StableDiffusionPipeline {
  private constructor(
    readonly textEncoder: ort.InferenceSession,
    readonly unet: ort.InferenceSession,
    readonly vaeDecoder: ort.InferenceSession,
    readonly tokenizer: ClipPromptTokenizer,
    readonly schedulerConfig: SchedulerConfig,
    readonly schedulerChoice: SchedulerChoice,
    readonly vaeScalingFactor: number,
    /** Bytes of the model files the sessions were created from. */
    readonly weightBytes: number,
  ) {
    this.inputIdsMeta = tensorInput(textEncoder, 'input_ids', 'text_encoder', true);
    if (this.inputIdsMeta.type !== 'int32' && this.inputIdsMeta.type !== 'int64') {
      throw new IncompatibleExportError(`text_encoder: input_ids dtype ${this.inputIdsMeta.type} (expected int32 or int64)`);
    }
    tensorInput(unet, 'sample', 'unet', true);
    tensorInput(unet, 'encoder_hidden_states', 'unet', true);
    this.timestepMeta = tensorInput(unet, 'timestep', 'unet', true);
    this.timestepCondMeta = tensorInput(unet, 'timestep_cond', 'unet', false);
    tensorInput(vaeDecoder, 'latent_sample', 'vae_decoder', true);
    this.hiddenStateOutput = outputName(textEncoder, 'last_hidden_state');
    this.unetOutput = outputName(unet, 'out_sample');
    this.vaeOutput = outputName(vaeDecoder, 'sample');
  }

  private readonly inputIdsMeta: TensorMeta;
  private readonly timestepMeta: TensorMeta;
  private readonly timestepCondMeta: TensorMeta | undefined;
  private readonly hiddenStateOutput: string;
  private readonly unetOutput: string;
  private readonly vaeOutput: string;

  static async load(options: PipelineLoadOptions): Promise<StableDiffusionPipeline> {
    const { dir } = options;
    const schedulerConfig = JSON.parse(await readFile(join(dir, 'scheduler', 'scheduler_config.json'), 'utf8')) as SchedulerConfig;
    let vaeScalingFactor = options.vaeScalingFactor;
    const vaeConfigPath = join(dir, 'vae_decoder', 'config.json');
    if (vaeScalingFactor === undefined && existsSync(vaeConfigPath)) {
      const vaeConfig = JSON.parse(await readFile(vaeConfigPath, 'utf8')) as { scaling_factor?: number };
      vaeScalingFactor = vaeConfig.scaling_factor;
    }
    const tokenizer = await ClipPromptTokenizer.load(join(dir, 'tokenizer'));
    // Weights may live beside a model in external-data files (a UNet over 2 GB does): count the whole folder.
    let weightBytes = 0;
    for (const file of EXPORT_MODEL_FILES) weightBytes += (await stat(join(dir, file))).size;
    const [textEncoder, unet, vaeDecoder] = await Promise.all(
      EXPORT_MODEL_FILES.map((file) => ort.InferenceSession.create(join(dir, file), options.sessionOptions)),
    );
    return new StableDiffusionPipeline(
      textEncoder as ort.InferenceSession,
      unet as ort.InferenceSession,
      vaeDecoder as ort.InferenceSession,
      tokenizer,
      schedulerConfig,
      options.scheduler,
      vaeScalingFactor ?? DEFAULT_VAE_SCALING_FACTOR,
      weightBytes,
    );
  }

  /** e.g. `euler` or `lcm`: part of the batching key, since members of one pass share the timesteps. */
  get schedulerKind(): string {
    return resolveSchedulerKind(this.schedulerChoice, this.schedulerConfig);
  }

  /** Whether a pass with this guidance scale runs the UNet on conditional and unconditional inputs together. */
  usesGuidance(guidanceScale: number): boolean {
    return guidanceScale > 1 && this.timestepCondMeta === undefined;
  }

  async release(): Promise<void> {
    await Promise.all([this.textEncoder.release(), this.unet.release(), this.vaeDecoder.release()]);
  }

  async run(members: readonly PassMember[], params: PassParams, control: PassControl): Promise<PassResult> {
    const started = performance.now();
    let textEncoderMs = 0;
    let unetMs = 0;
    let vaeMs = 0;
    let pixelsMs = 0;
    const { width, height, steps, guidanceScale } = params;
    if (width % VAE_SCALE !== 0 || height % VAE_SCALE !== 0) throw new RangeError(`width and height must be multiples of ${VAE_SCALE}`);
    const h = height / VAE_SCALE;
    const w = width / VAE_SCALE;
    const latentSize = LATENT_CHANNELS * h * w;
    const scheduler = createScheduler(this.schedulerChoice, this.schedulerConfig, steps);
    const guided = this.usesGuidance(guidanceScale);
    const timings = (): PassTimings => ({
      totalMs: performance.now() - started,
      sessionRunMs: textEncoderMs + unetMs + vaeMs,
      textEncoderMs,
      unetMs,
      vaeMs,
      pixelsMs,
    });

    let active: ActiveMember[] = members.map((member) => {
      const noise = new SeededGaussian(member.seed);
      return { member, noise, latents: noise.fill(new Float32Array(latentSize), scheduler.initNoiseSigma), cond: new Float32Array(0), uncond: undefined };
    });
    const dropCancelled = (completedSteps: number): boolean => {
      const before = active.length;
      active = active.filter((a) => {
        if (!control.isCancelled(a.member.memberId)) return true;
        control.onDropped(a.member.memberId, completedSteps);
        return false;
      });
      return active.length !== before;
    };

    dropCancelled(0);
    if (active.length === 0) return { images: [], timings: timings() };

    // Text encoding: unconditional rows first, then conditional, as diffusers concatenates them.
    const seqLen = this.tokenizer.maxLength;
    const rows = guided ? 2 * active.length : active.length;
    const ids = new Int32Array(rows * seqLen);
    active.forEach((a, k) => {
      if (guided) this.tokenizer.encodeInto(a.member.negativePrompt, ids, k * seqLen);
      this.tokenizer.encodeInto(a.member.prompt, ids, ((guided ? active.length : 0) + k) * seqLen);
    });
    const idsTensor =
      this.inputIdsMeta.type === 'int64'
        ? new ort.Tensor('int64', BigInt64Array.from(ids, (v) => BigInt(v)), [rows, seqLen])
        : new ort.Tensor('int32', ids, [rows, seqLen]);
    let t0 = performance.now();
    const encoded = (await this.textEncoder.run({ input_ids: idsTensor }, [this.hiddenStateOutput]))[this.hiddenStateOutput] as ort.Tensor;
    textEncoderMs += performance.now() - t0;
    const hidden = encoded.data as Float32Array;
    const contextDim = encoded.dims[2] as number;
    const rowSize = seqLen * contextDim;
    active.forEach((a, k) => {
      a.uncond = guided ? hidden.slice(k * rowSize, (k + 1) * rowSize) : undefined;
      const condRow = (guided ? active.length : 0) + k;
      a.cond = hidden.slice(condRow * rowSize, (condRow + 1) * rowSize);
    });

    let context: ort.Tensor | undefined;
    let timestepCond: ort.Tensor | undefined;
    let sample = new Float32Array(0);
    const guidedNoise = new Float32Array(latentSize);
    for (let i = 0; i < steps; i++) {
      if (dropCancelled(i)) context = undefined;
      if (active.length === 0) return { images: [], timings: timings() };
      const n = active.length;
      const batch = guided ? 2 * n : n;
      if (!context) {
        // Rebuilt only when the membership changes: for a real text encoder this is 77 x 768 floats per row.
        const data = new Float32Array(batch * rowSize);
        active.forEach((a, k) => {
          if (guided) data.set(a.uncond as Float32Array, k * rowSize);
          data.set(a.cond, ((guided ? n : 0) + k) * rowSize);
        });
        context = new ort.Tensor('float32', data, [batch, seqLen, contextDim]);
        // The UNet input buffer is reused across steps (session.run has returned before we write it again).
        sample = new Float32Array(batch * latentSize);
        if (this.timestepCondMeta) {
          const dim = this.timestepCondMeta.shape[1];
          if (typeof dim !== 'number') throw new IncompatibleExportError('unet: timestep_cond needs a fixed embedding size');
          const embedding = guidanceEmbedding(guidanceScale, dim);
          const cond = new Float32Array(batch * dim);
          for (let k = 0; k < batch; k++) cond.set(embedding, k * dim);
          timestepCond = new ort.Tensor('float32', cond, [batch, dim]);
        }
      }
      const scale = scheduler.inputScale(i);
      for (let k = 0; k < n; k++) {
        const latents = (active[k] as ActiveMember).latents;
        const base = k * latentSize;
        for (let j = 0; j < latentSize; j++) sample[base + j] = (latents[j] as number) * scale;
        if (guided) sample.copyWithin((n + k) * latentSize, base, base + latentSize);
      }
      const feeds: Record<string, ort.Tensor> = {
        sample: new ort.Tensor('float32', sample, [batch, LATENT_CHANNELS, h, w]),
        timestep: timestepTensor(this.timestepMeta, scheduler.timesteps[i] as number, batch),
        encoder_hidden_states: context,
      };
      if (timestepCond) feeds.timestep_cond = timestepCond;
      control.beforeUnet?.(n);
      t0 = performance.now();
      const out = ((await this.unet.run(feeds, [this.unetOutput]))[this.unetOutput] as ort.Tensor).data as Float32Array;
      unetMs += performance.now() - t0;
      active.forEach((a, k) => {
        let noisePred: Float32Array;
        if (guided) {
          // Classifier-free guidance: uncond + g * (cond - uncond).
          const u = k * latentSize;
          const c = (n + k) * latentSize;
          for (let j = 0; j < latentSize; j++) {
            const uv = out[u + j] as number;
            guidedNoise[j] = uv + guidanceScale * ((out[c + j] as number) - uv);
          }
          noisePred = guidedNoise;
        } else noisePred = out.subarray(k * latentSize, (k + 1) * latentSize);
        scheduler.step(i, noisePred, a.latents, a.noise);
      });
      control.onStep(
        i + 1,
        steps,
        active.map((a) => a.member.memberId),
      );
    }

    dropCancelled(steps);
    if (active.length === 0) return { images: [], timings: timings() };
    const n = active.length;
    const latents = new Float32Array(n * latentSize);
    const inv = 1 / this.vaeScalingFactor;
    active.forEach((a, k) => {
      for (let j = 0; j < latentSize; j++) latents[k * latentSize + j] = (a.latents[j] as number) * inv;
    });
    t0 = performance.now();
    const decoded = (await this.vaeDecoder.run({ latent_sample: new ort.Tensor('float32', latents, [n, LATENT_CHANNELS, h, w]) }, [this.vaeOutput]))[
      this.vaeOutput
    ] as ort.Tensor;
    vaeMs += performance.now() - t0;
    const [, channels, outH, outW] = decoded.dims;
    if (channels !== 3 || outH !== height || outW !== width) {
      throw new IncompatibleExportError(`vae_decoder: produced [${decoded.dims.join(', ')}], expected [${n}, 3, ${height}, ${width}]`);
    }
    t0 = performance.now();
    const pixels = decoded.data as Float32Array;
    const images = active.map((a, k) => ({ memberId: a.member.memberId, rgba: toRgba(pixels, k * 3 * width * height, width, height) }));
    pixelsMs += performance.now() - t0;
    return { images, timings: timings() };
  }
}
