// The UNet's inputs and output for the members now in a pass, allocated once and rewritten at every step: the
// denoising loop (pipeline.ts) writes the scaled latents and the timestep in place, session.run writes its output
// into a buffer given to it as a preallocated fetch, and guidance combines that output into another buffer of this
// batch. A step then allocates nothing the size of a latent. The batch is rebuilt only when a member leaves the pass.
//
// onnxruntime-node 1.30 takes preallocated outputs only in host memory: its IO binding ('gpu-buffer') exists for
// WebGPU buffers, not CUDA ones, so under CUDA each step still copies the latents to the device and the prediction
// back (for SD-Turbo at batch 16 about 1 MB each way).
import * as ort from 'onnxruntime-node';
import { applyGuidance, fillSample, setTimestep, timestepCondTensor, timestepTensor } from './tensors';
import type { ExportLayout } from './tensors';

export interface UnetBatchShape {
  /** Members in the batch. */
  readonly members: number;
  /** Channels, height and width of one member's latents. */
  readonly latentDims: readonly [number, number, number];
  /** Classifier-free guidance: the UNet sees every member twice, unconditional rows first. */
  readonly guided: boolean;
  readonly guidanceScale: number;
}

export class UnetBatch {
  /** UNet rows: each member twice under guidance. */
  readonly rows: number;
  private readonly sample: Float32Array;
  private readonly feeds: Record<string, ort.Tensor>;
  private readonly output: Float32Array;
  private readonly fetches: Record<string, ort.Tensor>;
  /** The guided prediction, one row per member (unguided passes read the output itself). */
  private readonly guidedNoise: Float32Array | undefined;

  constructor(
    private readonly layout: ExportLayout,
    private readonly shape: UnetBatchShape,
    context: ort.Tensor,
  ) {
    const { members, latentDims, guided } = shape;
    const latentSize = latentDims[0] * latentDims[1] * latentDims[2];
    this.rows = guided ? 2 * members : members;
    this.sample = new Float32Array(this.rows * latentSize);
    this.output = new Float32Array(this.rows * latentSize);
    this.guidedNoise = guided ? new Float32Array(members * latentSize) : undefined;
    this.feeds = {
      sample: new ort.Tensor('float32', this.sample, [this.rows, ...latentDims]),
      timestep: timestepTensor(layout.timestep, 0, this.rows),
      encoder_hidden_states: context,
    };
    if (layout.timestepCond) {
      this.feeds.timestep_cond = timestepCondTensor(layout.timestepCond, shape.guidanceScale, this.rows);
    }
    this.fetches = { [layout.unetOutput]: new ort.Tensor('float32', this.output, [this.rows, ...latentDims]) };
  }

  /** Writes the members' latents (back to back) times `scale`, and the timestep, into the UNet's inputs. */
  prepare(latents: Float32Array, scale: number, timestep: number): void {
    fillSample(this.sample, latents, scale, this.shape.guided);
    setTimestep(this.feeds.timestep as ort.Tensor, timestep);
  }

  /** One UNet run on the prepared inputs; its output lands in this batch's buffer. */
  async run(unet: ort.InferenceSession): Promise<void> {
    await unet.run(this.feeds, this.fetches);
  }

  /** The noise prediction per member, back to back: guided when the pass is, else the UNet output itself. */
  prediction(): Float32Array {
    if (!this.guidedNoise) return this.output;
    applyGuidance(this.output, this.shape.guidanceScale, this.guidedNoise);
    return this.guidedNoise;
  }
}
