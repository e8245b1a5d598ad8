// Every code that can reach a client, in one list. The README's protocol section documents the same list, and
// test/unit/error-codes.test.ts keeps the two in step. Failure types (ApplicationFailure.type) raised inside
// workflows and activities are listed here too, with the client code each one becomes.

/** Codes of `error` frames: a frame the gateway could not read at all. */
export const FRAME_ERROR_CODES = {
  BAD_JSON: 'The frame is not valid JSON.',
  BAD_FRAME: 'The frame is not a JSON object with a string "type", or is a binary frame.',
  UNKNOWN_TYPE: 'The frame\'s "type" is not a message this protocol version knows.',
  FRAME_TOO_LARGE: 'The frame is larger than the 64 KiB limit.',
} as const;

/** Codes of `rejected` frames: a readable message the gateway refused before starting any work. */
export const REJECT_CODES = {
  INVALID_REQUEST: 'A field is missing, has the wrong type or is out of range; "details" names the fields.',
  UNKNOWN_MODEL: 'The model is not in the catalogue.',
  UNKNOWN_TIER: 'The tier is not turbo, fast or relax.',
  INVALID_SIZE: "Width or height is outside the model's range or not a multiple of 8.",
  INVALID_PROMPT: 'The prompt is empty or longer than 2000 characters.',
  TIER_NOT_ALLOWED: 'The API key\'s plan does not include the requested tier; "details" lists the tiers it allows.',
  RATE_LIMITED: 'Too many requests from this user; "retryAfterMs" says when to try again.',
  IN_FLIGHT_LIMIT:
    'This user already has as many requests in flight as the plan allows; "retryAfterMs" estimates when one ends.',
  QUEUE_FULL:
    'The GPU queue this request routes to would not start it within its tier\'s wait bound; relax is shed first, turbo last. "retryAfterMs" comes from the queue\'s drain rate.',
  OVERLOADED:
    'The service holds as many requests in flight as it accepts (seed 003\'s 503); "retryAfterMs" estimates when a place frees.',
  MODEL_CIRCUIT_OPEN:
    'The model is failing on the GPU fleets and new requests for it are paused; "retryAfterMs" says when to try again.',
  RELAX_SHED:
    'More than 10% of requests are failing, so the relax tier is paused to keep the interactive tiers going; "retryAfterMs" says when to try again.',
  REGION_UNAVAILABLE:
    'No healthy region serves the model (it is served by other regions than this gateway\'s, and they are all down); "retryAfterMs" says when to try again.',
  UNKNOWN_REQUEST: 'A cancel named a request that this user never submitted.',
  SERVICE_UNAVAILABLE: 'The request could not be started because the orchestrator is unreachable; retry later.',
} as const;

/** Codes of `failed` frames: an accepted request that ended without images. */
export const FAILURE_CODES = {
  UNSAFE_PROMPT: 'The safety check refused the prompt.',
  CANCELLED: 'The request was cancelled by its client.',
  MODEL_UNAVAILABLE: 'No worker could load the model (missing or corrupted files on every attempt).',
  INFERENCE_FAILED: 'Inference failed after all retries.',
  STORAGE_FAILED: 'The images could not be stored after all retries.',
  TIMED_OUT: 'The request did not finish within its deadline ("deadlineMs", or 24 h waiting for the safety screen).',
  NO_CAPACITY: 'No GPU fleet that can serve the request started it in time; retry later.',
  INTERNAL: 'An unexpected error; quote the correlationId to the operators.',
} as const;

export type FrameErrorCode = keyof typeof FRAME_ERROR_CODES;
export type RejectCode = keyof typeof REJECT_CODES;
export type FailureCode = keyof typeof FAILURE_CODES;
export type ClientErrorCode = FrameErrorCode | RejectCode | FailureCode;

/**
 * `ApplicationFailure.type` values raised by activities, with the client code each becomes and whether another
 * attempt could succeed. Activities build every failure from this table (activities/failures.ts), and the workflow
 * lists the non-retryable ones in its retry policies, so retryability is decided here and nowhere else.
 */
export const FAILURE_TYPES = {
  /** The safety screen refused the prompt. */
  UnsafePrompt: { code: 'UNSAFE_PROMPT', retryable: false },
  /** The activity was called in a way that can never work (e.g. an event published outside a workflow). */
  InvalidRequest: { code: 'INTERNAL', retryable: false },
  /** No backend of this worker serves the model. */
  ModelNotFound: { code: 'MODEL_UNAVAILABLE', retryable: false },
  /** The model files failed verification; the worker reloads them, and another attempt may run elsewhere. */
  ModelCorrupted: { code: 'MODEL_UNAVAILABLE', retryable: true },
  /** The GPU ran out of memory even at batch 1. */
  OutOfMemory: { code: 'INFERENCE_FAILED', retryable: true },
  /** The backend failed for another reason. */
  InferenceFailed: { code: 'INFERENCE_FAILED', retryable: true },
  /** The device itself failed (CUDA error, lost device): the worker restarts, and the request runs elsewhere. */
  GpuError: { code: 'INFERENCE_FAILED', retryable: true },
  /** The worker was shutting down (drain past its grace time) and handed the run back to run elsewhere. */
  WorkerShutdown: { code: 'INFERENCE_FAILED', retryable: true },
  /** The object store refused a write or a read; it may answer the next attempt. */
  StorageFailed: { code: 'STORAGE_FAILED', retryable: true },
  /** The staged images are missing or not what inference reported: storing again cannot fix them. */
  StagedImagesInvalid: { code: 'STORAGE_FAILED', retryable: false },
  /**
   * Raised by the workflow: the request failed on POISON_DISTINCT_WORKERS different workers, so it is the likely
   * fault (a poison request); it ends without more retries and is marked Quarantined for operators.
   */
  Quarantined: { code: 'INFERENCE_FAILED', retryable: false },
  /** Raised by the workflow: no fleet the routing matrix allows started the GPU step within its bound. */
  NoCapacity: { code: 'NO_CAPACITY', retryable: false },
  /**
   * The request's deadline (`deadlineMs`) passed before it started or finished: raised by the workflow, or by the GPU
   * worker that stopped the run at the deadline. Nothing about this request can be done in time any more.
   */
  DeadlineExceeded: { code: 'TIMED_OUT', retryable: false },
} as const satisfies Record<string, { code: FailureCode; retryable: boolean }>;

export type FailureType = keyof typeof FAILURE_TYPES;

export function isFailureType(value: string | undefined): value is FailureType {
  return value !== undefined && Object.prototype.hasOwnProperty.call(FAILURE_TYPES, value);
}
