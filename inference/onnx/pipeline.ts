// The Stable Diffusion text-to-image pipeline over a diffusers ONNX export. It runs inside an inference thread
// (inference-thread.ts), never on the main thread: onnxruntime's session.run blocks the thread that calls it.
//
// One call runs one batched pass: its members share the model, size, steps, guidance and scheduler; each member has
// its own prompt and seed. A member's latents depend only on its own seed and prompt, so it gets the same image
// whatever else is in the pass, and a member cancelled between steps is dropped without touching the others.
//
// A pass runs in named stages, as diffusers' StableDiffusionPipeline.__call__ does: prepareLatents (seeded noise per
// member), encodePrompt (text encoder, negative prompts too under classifier-free guidance), denoise (the scheduler's
// steps, each with one UNet run in predictNoise), decode (VAE) and postProcess (RGBA pixels; PNG encoding happens in
// the PNG encoder threads).
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { ClipPromptTokenizer } from './clip-tokenizer';
import { SeededGaussian } from './noise';
import type { PassControl, PassImage, PassMember, PassParams, PassResult, PassTimings } from './pass';
import { toRgba } from './png';
import { createScheduler, resolveSchedulerKind } from './schedulers';
import type { DenoisingScheduler, SchedulerChoice, SchedulerConfig } from './schedulers';
import { contextTensor, exportLayout, fillSample, guidedPrediction, IncompatibleExportError } from './tensors';
import { scaledLatents, timestepCondTensor, timestepTensor, tokenIdsTensor, type ExportLayout } from './tensors';

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

/** A member still in the pass: its seeded noise, its latents, and its text embeddings once encoded. */
interface ActiveMember {
  readonly member: PassMember;
  readonly noise: SeededGaussian;
  readonly latents: Float32Array;
  cond: Float32Array;
  uncond: Float32Array | undefined;
}

/** Where a pass's time went: inside each model's session.run, and on pixels, since the pass started. */
class PassClock {
  private readonly started = performance.now();
  textEncoderMs = 0;
  unetMs = 0;
  vaeMs = 0;
  pixelsMs = 0;

  timings(): PassTimings {
    const { textEncoderMs, unetMs, vaeMs, pixelsMs } = this;
    const sessionRunMs = textEncoderMs + unetMs + vaeMs;
    return { totalMs: performance.now() - this.started, sessionRunMs, textEncoderMs, unetMs, vaeMs, pixelsMs };
  }
}

/** One pass as it moves through the stages. */
interface PassState {
  readonly params: PassParams;
  readonly control: PassControl;
  readonly clock: PassClock;
  readonly latentDims: readonly [channels: number, height: number, width: number];
  /** Floats in one member's latents. */
  readonly latentSize: number;
  readonly scheduler: DenoisingScheduler;
  /** Classifier-free guidance: the UNet sees every member twice, unconditional rows first. */
  readonly guided: boolean;
  /** Members not cancelled so far, in pass order. */
  active: ActiveMember[];
}

/** The text encoder's output layout: one row per prompt, seqLen tokens of contextDim floats. */
interface PromptEmbeddings {
  readonly seqLen: number;
  readonly contextDim: number;
}

/** The UNet inputs that stay the same while no member leaves the pass. */
interface UnetBatch {
  /** UNet rows: each member twice under guidance. */
  readonly rows: number;
  readonly context: ort.Tensor;
  /** The `sample` data, rewritten each step (session.run has returned before it is written again). */
  readonly sample: Float32Array;
  readonly timestepCond: ort.Tensor | undefined;
}

/** Takes the members cancelled since the last check out of the pass, reporting each; true when it took any. */
function dropCancelled(pass: PassState, completedSteps: number): boolean {
  const before = pass.active.length;
  pass.active = pass.active.filter((a) => {
    if (!pass.control.isCancelled(a.member.memberId)) return true;
    pass.control.onDropped(a.member.memberId, completedSteps);
    return false;
  });
  return pass.active.length !== before;
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
    pass.active = this.prepareLatents(pass, members);
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
    const scheduler = createScheduler(this.schedulerChoice, this.schedulerConfig, params.steps);
    const guided = this.usesGuidance(params.guidanceScale);
    const latentSize = latentDims[0] * latentDims[1] * latentDims[2];
    return { params, control, clock, latentDims, latentSize, scheduler, guided, active: [] };
  }

  /** Each member's starting latents: noise from its own seed, scaled to the scheduler's initial sigma. */
  private prepareLatents(pass: PassState, members: readonly PassMember[]): ActiveMember[] {
    return members.map((member) => {
      const noise = new SeededGaussian(member.seed);
      const latents = noise.fill(new Float32Array(pass.latentSize), pass.scheduler.initNoiseSigma);
      return { member, noise, latents, cond: new Float32Array(0), uncond: undefined };
    });
  }

  /** Text encoding in one run: negative-prompt rows first under guidance, then prompts, as diffusers concatenates. */
  private async encodePrompt(pass: PassState): Promise<PromptEmbeddings> {
    const { active, guided } = pass;
    const seqLen = this.tokenizer.maxLength;
    const condOffset = guided ? active.length : 0;
    const rows = condOffset + active.length;
    const ids = new Int32Array(rows * seqLen);
    active.forEach((a, k) => {
      if (guided) this.tokenizer.encodeInto(a.member.negativePrompt, ids, k * seqLen);
      this.tokenizer.encodeInto(a.member.prompt, ids, (condOffset + k) * seqLen);
    });
    const idsTensor = tokenIdsTensor(this.layout.inputIds, ids, rows, seqLen);
    const output = this.layout.hiddenStateOutput;
    const t0 = performance.now();
    const encoded = (await this.textEncoder.run({ input_ids: idsTensor }, [output]))[output];
    pass.clock.textEncoderMs += performance.now() - t0;
    const hidden = (encoded as ort.Tensor).data as Float32Array;
    const contextDim = (encoded as ort.Tensor).dims[2] as number;
    const rowSize = seqLen * contextDim;
    active.forEach((a, k) => {
      a.uncond = guided ? hidden.slice(k * rowSize, (k + 1) * rowSize) : undefined;
      a.cond = hidden.slice((condOffset + k) * rowSize, (condOffset + k + 1) * rowSize);
    });
    return { seqLen, contextDim };
  }

  /**
   * The scheduler's steps. Before each, members cancelled since the last one leave the pass (and the UNet batch is
   * rebuilt without them); after each, control hears the step and who is still in. Returns early if no one is.
   */
  private async denoise(pass: PassState, prompt: PromptEmbeddings): Promise<void> {
    const { steps, guidanceScale } = pass.params;
    const guidedNoise = new Float32Array(pass.latentSize);
    let batch: UnetBatch | undefined;
    for (let i = 0; i < steps; i++) {
      if (dropCancelled(pass, i)) batch = undefined;
      if (pass.active.length === 0) return;
      batch ??= this.unetBatch(pass, prompt);
      const out = await this.predictNoise(pass, batch, i);
      const n = pass.active.length;
      pass.active.forEach((a, k) => {
        let noisePred: Float32Array;
        if (pass.guided) {
          guidedPrediction(out, k, n, guidanceScale, guidedNoise);
          noisePred = guidedNoise;
        } else noisePred = out.subarray(k * pass.latentSize, (k + 1) * pass.latentSize);
        pass.scheduler.step(i, noisePred, a.latents, a.noise);
      });
      pass.control.onStep(
        i + 1,
        steps,
        pass.active.map((a) => a.member.memberId),
      );
    }
  }

  /** The UNet inputs for the members now in the pass; for SD's text encoder the context is 77 x 768 floats a row. */
  private unetBatch(pass: PassState, prompt: PromptEmbeddings): UnetBatch {
    const { active, guided } = pass;
    const rows = guided ? 2 * active.length : active.length;
    const cond = active.map((a) => a.cond);
    const uncond = guided ? active.map((a) => a.uncond as Float32Array) : undefined;
    const timestepCond = this.layout.timestepCond;
    return {
      rows,
      context: contextTensor(cond, uncond, prompt.seqLen, prompt.contextDim),
      sample: new Float32Array(rows * pass.latentSize),
      timestepCond: timestepCond ? timestepCondTensor(timestepCond, pass.params.guidanceScale, rows) : undefined,
    };
  }

  /** One UNet run at step `step` on every member's scaled latents; returns its output, batch.rows predictions. */
  private async predictNoise(pass: PassState, batch: UnetBatch, step: number): Promise<Float32Array> {
    const { scheduler } = pass;
    fillSample(
      batch.sample,
      pass.active.map((a) => a.latents),
      scheduler.inputScale(step),
      pass.guided,
    );
    const feeds: Record<string, ort.Tensor> = {
      sample: new ort.Tensor('float32', batch.sample, [batch.rows, ...pass.latentDims]),
      timestep: timestepTensor(this.layout.timestep, scheduler.timesteps[step] as number, batch.rows),
      encoder_hidden_states: batch.context,
    };
    if (batch.timestepCond) feeds.timestep_cond = batch.timestepCond;
    pass.control.beforeUnet?.(pass.active.length);
    const output = this.layout.unetOutput;
    const t0 = performance.now();
    const out = ((await this.unet.run(feeds, [output]))[output] as ort.Tensor).data as Float32Array;
    pass.clock.unetMs += performance.now() - t0;
    return out;
  }

  /** The VAE decoder on every member's unscaled latents in one run; returns RGB planes in [-1, 1]. */
  private async decode(pass: PassState): Promise<ort.Tensor> {
    const { width, height } = pass.params;
    const n = pass.active.length;
    const latents = scaledLatents(
      pass.active.map((a) => a.latents),
      1 / this.vaeScalingFactor,
    );
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
    return decoded;
  }

  /** Decoded planes to one RGBA image per member. */
  private postProcess(pass: PassState, decoded: ort.Tensor): PassImage[] {
    const { width, height } = pass.params;
    const imageSize = 3 * width * height;
    const t0 = performance.now();
    const pixels = decoded.data as Float32Array;
    const images = pass.active.map((a, k) => {
      return { memberId: a.member.memberId, rgba: toRgba(pixels, k * imageSize, width, height) };
    });
    pass.clock.pixelsMs += performance.now() - t0;
    return images;
  }
}
