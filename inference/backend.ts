// The contract every inference backend implements: the simulated GPU backend (load and chaos tests) and the
// ONNX Runtime pipeline (real models). The inference activity picks a backend per model from worker config.
import type { FailureType } from '../core/errors';
import type { ModelName } from '../core/models';
import type { GenerationParams } from '../core/generation-params';
import type { BackendTelemetry } from './telemetry';

/** One request's work for a backend: its generation parameters, named by its request id in logs and errors. */
export interface InferenceJob extends GenerationParams {
  readonly requestId: string;
  /** Run alone, one image per pass: shares no batch (a retry after the device ran out of memory). */
  readonly soloBatch?: boolean;
  /** Temporal priority key of the request (1 = first); a backend queueing jobs serves them in this order. */
  readonly priority?: number;
  /**
   * Background work (from a fleet's relax lane, seed 004): a backend queueing jobs serves it only when no other job
   * waits, and lets other work go first between its steps.
   */
  readonly background?: boolean;
}

/** The pipeline's stages, as a host may trace them. */
export type InferenceStage = 'text_encoder' | 'denoise' | 'vae' | 'postprocess' | 'png';

export interface InferenceHooks {
  /** Called after each denoising step (1-based); must not throw. */
  readonly onProgress: (step: number, totalSteps: number) => void;
  /**
   * Called once a stage of the request's work is over, with its start and end as epoch milliseconds (a batched pass
   * reports its stages to each request in it); for tracing. Must not throw. @default none
   */
  readonly onStage?: (stage: InferenceStage, startMs: number, endMs: number) => void;
  /** Aborted when the request is cancelled; the backend stops within one step and rejects with an AbortError. */
  readonly signal: AbortSignal;
}

export interface GeneratedImage {
  /** PNG-encoded image. */
  readonly png: Buffer;
  readonly seed: number;
  readonly width: number;
  readonly height: number;
}

export interface LoadedModelStatus {
  readonly model: string;
  /** Resident memory attributed to the model (host or device), bytes. */
  readonly memoryBytes: number;
  readonly executionProvider: string;
}

export interface BackendStatus {
  readonly backend: string;
  readonly ready: boolean;
  readonly loadedModels: readonly LoadedModelStatus[];
  /** Counters for operators and tests, e.g. `passes`, `batchedRequests`. */
  readonly counters: Readonly<Record<string, number>>;
}

export interface InferenceBackend {
  /** e.g. `simulated`, `onnx:cpu`, `onnx:cuda`. */
  readonly name: string;
  supports(model: ModelName): boolean;
  generate(job: InferenceJob, hooks: InferenceHooks): Promise<GeneratedImage[]>;
  status(): BackendStatus;
  /**
   * Fetches the model's files again from their source, verifies them and loads the model afresh; resolves once it is
   * ready, rejects (InferenceError) when the new copy fails too. The worker calls it after ModelCorrupted, while it
   * takes no work. Absent on a backend with nothing to reload.
   */
  reloadModel?(model: ModelName): Promise<void>;
  /** Passes, busy time and what else the backend knows of its device, for the worker's metrics. */
  readonly telemetry?: BackendTelemetry;
  close(): Promise<void>;
}

/** Wall-clock time as epoch milliseconds with sub-millisecond precision, for stage reports. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Rejection of a cancelled request (`name` is `AbortError`, as the InferenceHooks contract says). */
export class InferenceAbortedError extends Error {
  override readonly name = 'AbortError';
}

/** Thrown by a backend for failures the workflow handles by type (see core/errors.ts FAILURE_TYPES). */
export class InferenceError extends Error {
  override readonly name = 'InferenceError';
  constructor(
    readonly failureType: FailureType,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
