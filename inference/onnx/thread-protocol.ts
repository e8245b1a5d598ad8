// Messages between the backend (main thread) and its inference threads. Cancellation does not travel as a
// message: a pass carries a SharedArrayBuffer of per-member flags that the main thread sets and the inference thread
// polls between denoising steps, so a cancel lands even while the thread is inside a long session.run.
import type { PassImage, PassMember, PassParams, PassTimings } from './pass';
import type { SchedulerChoice } from './schedulers';

/** An execution provider as onnxruntime-node takes it. */
export type ExecutionProviderName = 'cpu' | 'cuda' | 'tensorrt';

/** What a thread needs to create a model's sessions; sent with every pass so a restarted thread can reload. */
export interface ModelLoadSpec {
  readonly model: string;
  /** Verified copy of the export in the model cache. */
  readonly dir: string;
  readonly scheduler: SchedulerChoice;
  readonly vaeScalingFactor?: number;
}

/** Fixed per thread for its lifetime (workerData). */
export interface InferenceThreadConfig {
  readonly threadIndex: number;
  readonly executionProviders: readonly ExecutionProviderName[];
  readonly deviceId: number;
  /** onnxruntime intra-op threads; 0 lets onnxruntime choose. */
  readonly intraOpNumThreads: number;
  /** Whether idle intra-op threads spin-wait (session-options.ts). */
  readonly intraOpSpinning: boolean;
  /** Fault injection: a UNet run with more images than this fails like an out-of-memory error. */
  readonly injectOomAboveMembers?: number;
}

export type ToThread =
  | { readonly type: 'load'; readonly requestId: number; readonly spec: ModelLoadSpec }
  | { readonly type: 'unload'; readonly requestId: number; readonly model: string }
  | {
      readonly type: 'run';
      readonly passId: number;
      readonly spec: ModelLoadSpec;
      readonly members: readonly PassMember[];
      readonly params: PassParams;
      /**
       * Int32Array view of members.length + 1 slots: flags[i] = 1 cancels members[i] (set by the main thread);
       * flags[members.length] holds the steps the pass has completed (set by the inference thread).
       */
      readonly cancelFlags: SharedArrayBuffer;
    };

export interface LoadedModelReport {
  readonly model: string;
  readonly weightBytes: number;
  /** Growth of the process's resident memory across this model's passes beyond its load, bytes (approximate). */
  readonly workspaceBytes: number;
  readonly executionProvider: string;
}

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly outOfMemory: boolean;
  readonly incompatibleExport: boolean;
}

export type FromThread =
  | { readonly type: 'ready' }
  | { readonly type: 'loaded'; readonly requestId: number; readonly report: LoadedModelReport }
  | { readonly type: 'unloaded'; readonly requestId: number }
  | { readonly type: 'load-failed'; readonly requestId: number; readonly error: SerializedError }
  | {
      readonly type: 'step';
      readonly passId: number;
      readonly step: number;
      readonly totalSteps: number;
      readonly memberIds: readonly number[];
    }
  | { readonly type: 'dropped'; readonly passId: number; readonly memberId: number; readonly completedSteps: number }
  | {
      readonly type: 'pass-done';
      readonly passId: number;
      /** Float planes per member still in the pass (cancelled members have none). */
      readonly images: readonly PassImage[];
      readonly timings: PassTimings;
      readonly report: LoadedModelReport;
    }
  | { readonly type: 'pass-failed'; readonly passId: number; readonly error: SerializedError };
