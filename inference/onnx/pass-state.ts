// A batched pass's state as the pipeline's stages (pipeline.ts) hand it on: its members, their latents back to back in
// one buffer, the text encoder's output, and the clock that splits the pass's time by stage.
import { performance } from 'node:perf_hooks';
import type * as ort from 'onnxruntime-node';
import type { SeededGaussian } from './noise';
import type { PassControl, PassMember, PassParams, PassTimings } from './pass';
import type { DenoisingScheduler } from './schedulers';

/** A member still in the pass: its seeded noise and its row among the prompts the text encoder ran (-1 before). */
export interface ActiveMember {
  readonly member: PassMember;
  readonly noise: SeededGaussian;
  readonly promptRow: number;
}

/** Where a pass's time went: inside each model's session.run, on the maths between steps, and on pixels. */
export class PassClock {
  private readonly started = performance.now();
  textEncoderMs = 0;
  unetMs = 0;
  stepMathMs = 0;
  vaeMs = 0;
  pixelsMs = 0;

  timings(): PassTimings {
    const { textEncoderMs, unetMs, stepMathMs, vaeMs, pixelsMs } = this;
    const sessionRunMs = textEncoderMs + unetMs + vaeMs;
    const totalMs = performance.now() - this.started;
    return { totalMs, sessionRunMs, textEncoderMs, unetMs, stepMathMs, vaeMs, pixelsMs };
  }
}

/** One pass as it moves through the stages. */
export interface PassState {
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
  /** The active members' latents back to back, member k's at k x latentSize (a view of the pass's buffer). */
  latents: Float32Array;
}

/** The text encoder's output: under guidance `encoded` negative-prompt rows, then `encoded` prompt rows. */
export interface PromptEmbeddings {
  readonly hidden: ort.Tensor;
  readonly encoded: number;
  readonly seqLen: number;
  readonly contextDim: number;
}

/**
 * Takes the members cancelled since the last check out of the pass, reporting each, and moves the others' latents
 * up so that they stay back to back; true when it took any.
 */
export function dropCancelled(pass: PassState, completedSteps: number): boolean {
  const kept: ActiveMember[] = [];
  const size = pass.latentSize;
  pass.active.forEach((a, k) => {
    if (pass.control.isCancelled(a.member.memberId)) {
      pass.control.onDropped(a.member.memberId, completedSteps);
      return;
    }
    if (kept.length !== k) pass.latents.copyWithin(kept.length * size, k * size, (k + 1) * size);
    kept.push(a);
  });
  if (kept.length === pass.active.length) return false;
  pass.active = kept;
  pass.latents = pass.latents.subarray(0, kept.length * size);
  return true;
}
