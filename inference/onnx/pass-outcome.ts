// What the ONNX backend does with a pass once its thread answers: the pass as the backend tracks it, the stages it
// reports to each request it served, and the error its requests fail with when it cannot be retried.
import { InferenceError, type InferenceStage } from '../backend';
import type { BatchKey } from './batcher';
import type { PassTimings } from './pass';
import type { MemberPass, MemberState, RequestState } from './request-state';
import { InferenceThreadError, type InferenceThread } from './thread-pool';
import { isDeviceFaultMessage } from './out-of-memory';

export interface RunningPass extends MemberPass {
  readonly id: number;
  readonly key: BatchKey;
  readonly members: MemberState[];
  readonly thread: InferenceThread;
  /** When it was handed to its thread, epoch ms. */
  readonly startedAt: number;
}

/**
 * Reports a finished pass's stages to each request in it: the thread measures each stage's length, laid end to end
 * from the pass's start (what the thread did between stages is small and goes unreported).
 */
export function reportPassStages(pass: RunningPass, timings: PassTimings, requests: Iterable<RequestState>): void {
  const stages: [InferenceStage, number][] = [
    ['text_encoder', timings.textEncoderMs],
    ['denoise', timings.unetMs + timings.stepMathMs],
    ['vae', timings.vaeMs],
    ['postprocess', timings.pixelsMs],
  ];
  for (const request of requests) {
    let at = pass.startedAt;
    for (const [stage, ms] of stages) {
      request.hooks.onStage?.(stage, at, at + ms);
      at += ms;
    }
  }
}

/** The error a pass's requests fail with when it cannot be retried as smaller passes. */
export function passFailure(key: BatchKey, err: Error, outOfMemory: boolean): InferenceError {
  if (outOfMemory) {
    const message = `${key.model} ${key.width}x${key.height}: out of memory for a single image: ${err.message}`;
    return new InferenceError('OutOfMemory', message, { cause: err });
  }
  if (isDeviceFaultMessage(err.message)) {
    return new InferenceError('GpuError', `${key.model}: the device failed: ${err.message}`, { cause: err });
  }
  const incompatible = err instanceof InferenceThreadError && err.incompatibleExport;
  return new InferenceError(incompatible ? 'ModelNotFound' : 'InferenceFailed', `${key.model}: ${err.message}`, {
    cause: err,
  });
}
