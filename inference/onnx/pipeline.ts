// The Stable Diffusion text-to-image pipeline over a diffusers ONNX export. It runs inside an inference thread
// (inference-thread.ts), never on the main thread: onnxruntime's session.run blocks the thread that calls it.
//
// One call runs one batched pass: its members share the model, size, steps, guidance and scheduler; each member has
// its own prompt and seed. A member's latents depend only on its own seed and prompt, so it gets the same image
// whatever else is in the pass, and a member cancelled between steps is dropped without touching the others.
//
// A pass runs in named stages, as diffusers' StableDiffusionPipeline.__call__ does: prepareLatents (seeded noise per
// member), encodePrompt (text encoder, negative prompts too under classifier-free guidance), denoise (the scheduler's
// steps, each with one UNet run), decode (VAE) and postProcess (one buffer of float planes per image, handed to the
// PNG encoder threads, which turn them into bytes). Every stage works on the whole batch at once: one text encoder
// run, one UNet run per step, one VAE run, and the arithmetic between them as single loops over all members' latents,
// which live back to back in one buffer.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { ClipPromptTokenizer } from './clip-tokenizer';
import { SeededGaussian } from './noise';
import type { PassControl, PassImage, PassMember, PassParams, PassResult } from './pass';
import { dropCancelled, PassClock, type PassState, type PromptEmbeddings } from './pass-state';
import { createScheduler, resolveSchedulerKind } from './schedulers';
import type { DenoisingScheduler, SchedulerChoice, SchedulerConfig } from './schedulers';
import { contextTensor, exportLayout, IncompatibleExportError, scaledLatents, tokenIdsTensor } from './tensors';
import type { ExportLayout } from './tensors';
import { UnetBatch } from './unet-batch';

export { IncompatibleExportError } from './tensors';

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
    this.layout = exportLayout(textEncoder, unet, vaeDecoder);
  }

  /** What varies between exports, checked when the sessions are created. */
  private readonly layout: ExportLayout;
  /** Schedulers by step count (see scheduler()). */
  private readonly schedulers = new Map<number, DenoisingScheduler>();

  static async load(options: PipelineLoadOptions): Promise<StableDiffusionPipeline> {
    const { dir } = options;
    const schedulerConfigPath = join(dir, 'scheduler', 'scheduler_config.json');
    const schedulerConfig = JSON.parse(await readFile(schedulerConfigPath, 'utf8')) as SchedulerConfig;
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
    return guidanceScale > 1 && this.layout.timestepCond === undefined;
  }

  async release(): Promise<void> {
    await Promise.all([this.textEncoder.release(), this.unet.release(), this.vaeDecoder.release()]);
  }

  /** One batched pass. Cancelled members leave it before text encoding, before each step and before decoding. */
  async run(members: readonly PassMember[], params: PassParams, control: PassControl): Promise<PassResult> {
    const pass = this.startPass(params, control);
    this.prepareLatents(pass, members);
    dropCancelled(pass, 0);
    if (pass.active.length === 0) return { images: [], timings: pass.clock.timings() };
    const prompt = await this.encodePrompt(pass);
    await this.denoise(pass, prompt);
    dropCancelled(pass, params.steps);
    if (pass.active.length === 0) return { images: [], timings: pass.clock.timings() };
    const decoded = await this.decode(pass);
    return { images: this.postProcess(pass, decoded), timings: pass.clock.timings() };
  }

  /** Starts the pass's clock, checks its size and creates its scheduler; members join in prepareLatents. */
  private startPass(params: PassParams, control: PassControl): PassState {
    const clock = new PassClock();
    const { width, height } = params;
    if (width % VAE_SCALE !== 0 || height % VAE_SCALE !== 0) {
      throw new RangeError(`width and height must be multiples of ${VAE_SCALE}`);
    }
    const latentDims = [LATENT_CHANNELS, height / VAE_SCALE, width / VAE_SCALE] as const;
    const scheduler = this.scheduler(params.steps);
    const guided = this.usesGuidance(params.guidanceScale);
    const latentSize = latentDims[0] * latentDims[1] * latentDims[2];
    return {
      params,
      control,
      clock,
      latentDims,
      latentSize,
      scheduler,
      guided,
      active: [],
      latents: new Float32Array(0),
    };
  }

  /**
   * The scheduler for `steps` steps. A scheduler holds only its timesteps and sigmas (the noise is each member's), so
   * passes with the same steps share one; building one costs more than a small model's pass spends between its runs.
   */
  private scheduler(steps: number): DenoisingScheduler {
    let scheduler = this.schedulers.get(steps);
    if (!scheduler) {
      scheduler = createScheduler(this.schedulerChoice, this.schedulerConfig, steps);
      if (this.schedulers.size >= 32) this.schedulers.clear();
      this.schedulers.set(steps, scheduler);
    }
    return scheduler;
  }

  /** Each member's starting latents, from its own seed, scaled to the scheduler's initial sigma, back to back. */
  private prepareLatents(pass: PassState, members: readonly PassMember[]): void {
    const size = pass.latentSize;
    pass.latents = new Float32Array(members.length * size);
    pass.active = members.map((member, k) => {
      const noise = new SeededGaussian(member.seed);
      noise.fill(pass.latents.subarray(k * size, (k + 1) * size), pass.scheduler.initNoiseSigma);
      return { member, noise, promptRow: -1 };
    });
  }

  /** Text encoding in one run: negative-prompt rows first under guidance, then prompts, as diffusers concatenates. */
  private async encodePrompt(pass: PassState): Promise<PromptEmbeddings> {
    const { active, guided } = pass;
    const seqLen = this.tokenizer.maxLength;
    const condOffset = guided ? active.length : 0;
    const rows = condOffset + active.length;
    const ids = new Int32Array(rows * seqLen);
    // Members cancelled before encoding are not encoded: promptRow counts the ones that are.
    const encodedMembers = active.map((a, k) => ({ ...a, promptRow: k }));
    encodedMembers.forEach((a, k) => {
      if (guided) this.tokenizer.encodeInto(a.member.negativePrompt, ids, k * seqLen);
      this.tokenizer.encodeInto(a.member.prompt, ids, (condOffset + k) * seqLen);
    });
    pass.active = encodedMembers;
    const idsTensor = tokenIdsTensor(this.layout.inputIds, ids, rows, seqLen);
    const output = this.layout.hiddenStateOutput;
    const t0 = performance.now();
    const hidden = (await this.textEncoder.run({ input_ids: idsTensor }, [output]))[output] as ort.Tensor;
    pass.clock.textEncoderMs += performance.now() - t0;
    return { hidden, encoded: active.length, seqLen, contextDim: hidden.dims[2] as number };
  }

  /**
   * The scheduler's steps. Before each, members cancelled since the last one leave the pass (and the UNet batch is
   * rebuilt without them); after each, control hears the step and who is still in. Returns early if no one is.
   */
  private async denoise(pass: PassState, prompt: PromptEmbeddings): Promise<void> {
    const { steps } = pass.params;
    const { scheduler, clock } = pass;
    let batch: UnetBatch | undefined;
    for (let i = 0; i < steps; i++) {
      if (dropCancelled(pass, i)) batch = undefined;
      if (pass.active.length === 0) return;
      batch ??= this.unetBatch(pass, prompt);
      const t0 = performance.now();
      batch.prepare(pass.latents, scheduler.inputScale(i), scheduler.timesteps[i] as number);
      const t1 = performance.now();
      pass.control.beforeUnet?.(pass.active.length);
      await batch.run(this.unet);
      const t2 = performance.now();
      const noises = pass.active.map((a) => a.noise);
      scheduler.step(i, batch.prediction(), pass.latents, noises);
      clock.unetMs += t2 - t1;
      clock.stepMathMs += t1 - t0 + (performance.now() - t2);
      pass.control.onStep(
        i + 1,
        steps,
        pass.active.map((a) => a.member.memberId),
      );
    }
  }

  /** The UNet inputs and output buffers for the members now in the pass. */
  private unetBatch(pass: PassState, prompt: PromptEmbeddings): UnetBatch {
    const { active, guided } = pass;
    const unchanged = active.length === prompt.encoded;
    // While every encoded member is in, the encoder's output already has the UNet's row order.
    const context = unchanged
      ? prompt.hidden
      : contextTensor(
          prompt.hidden.data as Float32Array,
          prompt.encoded,
          active.map((a) => a.promptRow),
          guided,
          prompt.seqLen,
          prompt.contextDim,
        );
    const { latentDims } = pass;
    const { guidanceScale } = pass.params;
    return new UnetBatch(this.layout, { members: active.length, latentDims, guided, guidanceScale }, context);
  }

  /** The VAE decoder on every member's unscaled latents in one run; returns RGB planes in [-1, 1]. */
  private async decode(pass: PassState): Promise<Float32Array> {
    const { width, height } = pass.params;
    const n = pass.active.length;
    const latents = scaledLatents(pass.latents, 1 / this.vaeScalingFactor);
    const output = this.layout.vaeOutput;
    const t0 = performance.now();
    const feeds = { latent_sample: new ort.Tensor('float32', latents, [n, ...pass.latentDims]) };
    const decoded = (await this.vaeDecoder.run(feeds, [output]))[output] as ort.Tensor;
    pass.clock.vaeMs += performance.now() - t0;
    const [, channels, outH, outW] = decoded.dims;
    if (channels !== 3 || outH !== height || outW !== width) {
      const expected = `[${n}, 3, ${height}, ${width}]`;
      throw new IncompatibleExportError(`vae_decoder: produced [${decoded.dims.join(', ')}], expected ${expected}`);
    }
    return decoded.data as Float32Array;
  }

  /** The decoded planes as one buffer per member, so each can be transferred to a PNG encoder thread on its own. */
  private postProcess(pass: PassState, planes: Float32Array): PassImage[] {
    const imageSize = 3 * pass.params.width * pass.params.height;
    const t0 = performance.now();
    const images = pass.active.map((a, k) => ({
      memberId: a.member.memberId,
      planes: planes.slice(k * imageSize, (k + 1) * imageSize),
    }));
    pass.clock.pixelsMs += performance.now() - t0;
    return images;
  }
}
