// Contracts between the workflow and its activities. Workflows import these types only; implementations live in
// activities/ and are built by `createActivities(deps)`.
import type { FleetDecision, FleetSignals } from './autoscale';
import type { FailureCode } from './errors';
import type { GpuType } from './gpu';
import type { RequestEvent, StoredImageRef } from './events';
import type { GenerationParams } from './generation-params';
import type { ModelName } from './models';

export interface SafetyInput {
  readonly requestId: string;
  readonly prompt: string;
  readonly negativePrompt: string;
}

export interface SafetyVerdict {
  readonly allowed: true;
  /** Which screen answered, e.g. `rules-v1`; recorded for audits. */
  readonly screen: string;
}

export interface SafetyActivities {
  /** Resolves when the prompt is allowed; throws non-retryable `UnsafePrompt` when not, retryable when the screen is down. */
  checkPromptSafety(input: SafetyInput): Promise<SafetyVerdict>;
}

/** The inference activity's input: the request's parameters, whose request they are, and the fleet it runs on. */
export interface InferenceInput extends GenerationParams {
  readonly requestId: string;
  readonly userId: string;
  readonly gpuType: GpuType;
  /** Run alone, one image per pass (a retry after running out of device memory; core/recovery.ts). */
  readonly soloBatch?: boolean;
  /**
   * The request's deadline, ms since epoch (GenerationRequest.deadlineAt): the worker stops the run there on its own
   * clock, instead of a heartbeat after the workflow's cancel. Absent: no deadline.
   */
  readonly deadlineAt?: number;
}

export interface InferenceOutput {
  /** Object-store keys of the PNGs, staged for the storage activity; never the bytes. */
  readonly stagingKeys: readonly string[];
  /** The region whose object store holds the staged images: the GPU worker's. Absent in histories from before. */
  readonly region?: string;
  /** Seed of each image (request seed + index). */
  readonly seeds: readonly number[];
  readonly width: number;
  readonly height: number;
  /** `simulated` or `onnx:<execution provider>`. */
  readonly backend: string;
  readonly workerId: string;
  readonly durationMs: number;
}

export interface InferenceActivities {
  runInference(input: InferenceInput): Promise<InferenceOutput>;
}

export interface StoreImagesInput {
  readonly requestId: string;
  readonly userId: string;
  readonly model: ModelName;
  readonly prompt: string;
  readonly stagingKeys: readonly string[];
  /** Where the staged images are (InferenceOutput.region); absent: this region's store. */
  readonly stagedRegion?: string;
  readonly seeds: readonly number[];
  readonly width: number;
  readonly height: number;
}

export interface StoreImagesOutput {
  readonly images: readonly (StoredImageRef & { readonly sha256: string; readonly bytes: number })[];
  /**
   * Whether the activity published the `completed` terminal itself. When it could not (Redis did not answer in
   * time), the workflow publishes it, retrying until Redis is back. Absent from older workers' results.
   */
  readonly terminalPublished?: boolean;
}

/** What a client is told of each stored image (the `completed` event), from what storage returned. */
export function imageRefs(stored: StoreImagesOutput): StoredImageRef[] {
  return stored.images.map(({ key, width, height, seed }) => ({ key, width, height, seed }));
}

export interface StorageActivities {
  /** Idempotent by requestId: a retry after a partial upload stores each image once. */
  storeImages(input: StoreImagesInput): Promise<StoreImagesOutput>;
}

export interface PublishEventInput {
  readonly requestId: string;
  readonly event: RequestEvent;
  /**
   * Publishes at most once per key per request (e.g. `status:generating`, `terminal`), so activity retries and
   * workflow replays never duplicate an event. Omit for events that may repeat (progress).
   */
  readonly dedupeKey?: string;
}

export interface NotificationActivities {
  /** Appends an event to the request's log and fans it out to gateways; returns its sequence number. */
  publishEvent(input: PublishEventInput): Promise<number>;
}

/**
 * The autoscaler's activities (issue 13), run by the region's control workers beside ControlActivities when autoscaling
 * is on: what the autoscaler sees, and what it asks the scale driver for.
 */
export interface AutoscalerActivities {
  sampleFleets(input: { readonly region: string }): Promise<FleetSignals[]>;
  applyScale(input: { readonly region: string; readonly decisions: readonly FleetDecision[] }): Promise<void>;
}

export type ControlActivities = SafetyActivities & StorageActivities & NotificationActivities;

export interface GenerationFailure {
  readonly code: FailureCode;
  readonly message: string;
  readonly retryable: boolean;
}
