// The ONNX backend's own counters, reported in status().counters for operators and tests (the backend adds gauges
// and model file counters next to them). One object per backend: the pass wiring and the per-request bookkeeping
// both count into it, so the names and their order in status() stay fixed in one place.
import type { PassTimings } from './pass';

export interface OnnxBackendCounters {
  requests: number;
  images: number;
  cancelledRequests: number;
  failedRequests: number;
  passes: number;
  /** Images that ran in passes of two or more. */
  batchedMembers: number;
  maxBatchSeen: number;
  oomRetries: number;
  /** Members dropped from a running pass by cancellation. */
  droppedMembers: number;
  /**
   * Milliseconds inside inference threads, summed over passes: whole passes and inside session.run. sessionRunMs
   * over wall time is the accelerator's duty cycle; passMs minus sessionRunMs is the pipeline's own work.
   */
  passMs: number;
  sessionRunMs: number;
  /** sessionRunMs by model, and the pipeline's own work by stage (PassTimings), ms summed over passes. */
  textEncoderMs: number;
  unetMs: number;
  stepMathMs: number;
  vaeMs: number;
  pixelsMs: number;
}

export function zeroCounters(): OnnxBackendCounters {
  return {
    requests: 0,
    images: 0,
    cancelledRequests: 0,
    failedRequests: 0,
    passes: 0,
    batchedMembers: 0,
    maxBatchSeen: 0,
    oomRetries: 0,
    droppedMembers: 0,
    passMs: 0,
    sessionRunMs: 0,
    textEncoderMs: 0,
    unetMs: 0,
    stepMathMs: 0,
    vaeMs: 0,
    pixelsMs: 0,
  };
}

/** Adds a finished pass's time split to the counters. */
export function addPassTimings(counters: OnnxBackendCounters, timings: PassTimings): void {
  counters.passMs += timings.totalMs;
  counters.sessionRunMs += timings.sessionRunMs;
  counters.textEncoderMs += timings.textEncoderMs;
  counters.unetMs += timings.unetMs;
  counters.stepMathMs += timings.stepMathMs;
  counters.vaeMs += timings.vaeMs;
  counters.pixelsMs += timings.pixelsMs;
}
