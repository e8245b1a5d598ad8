// One batched pass of the pipeline as the inference threads and the batcher see it: who is in it, what it makes,
// how its caller steers it between steps, and what comes back. The pipeline (pipeline.ts) runs it.

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
  /** The VAE's output for this image: 3 x height x width floats in [-1, 1], in a buffer of its own. */
  readonly planes: Float32Array;
}

/** Wall-clock split of one pass, milliseconds. */
export interface PassTimings {
  readonly totalMs: number;
  /** Time inside session.run, all three models. */
  readonly sessionRunMs: number;
  readonly textEncoderMs: number;
  readonly unetMs: number;
  /** Host arithmetic between UNet runs: scaling the latents into the UNet's input, guidance, the scheduler. */
  readonly stepMathMs: number;
  readonly vaeMs: number;
  /** Splitting the decoded planes into one buffer per image. */
  readonly pixelsMs: number;
}

export interface PassResult {
  readonly images: PassImage[];
  readonly timings: PassTimings;
}
