// Per-request bookkeeping of the ONNX backend. A request becomes one member per image; the batcher groups members of
// many requests into passes, so a request's images can be queued, running, encoding and done at the same time. Here
// each request's progress is reported, its PNGs are collected, and it is cancelled, failed or resolved exactly once;
// the backend moves the members between queue, pass and PNG encoder and tells this bookkeeping what happened.
import type { Logger } from '../../runtime/logger';
import {
  InferenceAbortedError,
  InferenceError,
  type GeneratedImage,
  type InferenceHooks,
  type InferenceJob,
} from '../backend';
import type { OnnxBackendCounters } from './backend-counters';
import { VAE_SCALE } from './pipeline';

export interface RequestState {
  readonly job: InferenceJob;
  readonly hooks: InferenceHooks;
  readonly members: MemberState[];
  readonly images: (GeneratedImage | undefined)[];
  lastReportedStep: number;
  settled: boolean;
  cancelled: boolean;
  readonly resolve: (images: GeneratedImage[]) => void;
  readonly reject: (err: Error) => void;
  readonly onAbort: () => void;
}

/** One image of a request. */
export interface MemberState {
  /** Unique in the backend: passes name their images by it. */
  readonly id: number;
  readonly request: RequestState;
  /** Image index within its request. */
  readonly index: number;
  readonly seed: number;
  stepsDone: number;
  /** Steps its pass had completed when the cancel flag was set (read from the thread's shared step counter). */
  stepsAtCancel: number | undefined;
  /** Steps this image had completed when cancellation removed it from its pass. */
  stepsAtDrop: number | undefined;
  state: 'queued' | 'running' | 'encoding' | 'done' | 'dropped';
  pass: MemberPass | undefined;
}

/**
 * What a member needs of the pass it runs in. `flags` is shared with the inference thread: one cancel flag per
 * member, in `members` order, then the count of steps the pass has completed.
 */
export interface MemberPass {
  readonly members: readonly MemberState[];
  readonly flags: Int32Array;
}

/** The backend counters that request bookkeeping moves, in place, so that status() reports one object. */
export type RequestCounters = Pick<
  OnnxBackendCounters,
  'images' | 'cancelledRequests' | 'failedRequests' | 'droppedMembers'
>;

/** Throws InferenceError InvalidRequest naming every problem of a job the ONNX pipeline cannot run. */
export function validateJob(job: InferenceJob): void {
  const problems: string[] = [];
  for (const [field, value] of [
    ['width', job.width],
    ['height', job.height],
  ] as const) {
    if (!Number.isInteger(value) || value < VAE_SCALE || value % VAE_SCALE !== 0) {
      problems.push(`${field} ${value} is not a positive multiple of ${VAE_SCALE}`);
    }
  }
  if (!Number.isInteger(job.steps) || job.steps < 1) problems.push(`steps ${job.steps} is not a positive integer`);
  if (!Number.isInteger(job.numImages) || job.numImages < 1) {
    problems.push(`numImages ${job.numImages} is not a positive integer`);
  }
  if (!Number.isSafeInteger(job.seed) || job.seed < 0 || !Number.isSafeInteger(job.seed + job.numImages)) {
    problems.push(`seed ${job.seed} is out of range`);
  }
  if (!Number.isFinite(job.guidanceScale) || job.guidanceScale < 0) {
    problems.push(`guidanceScale ${job.guidanceScale} is invalid`);
  }
  if (job.loras.length > 0 || job.controlnets.length > 0) {
    problems.push('LoRA adapters and ControlNets are not supported by the ONNX backend yet');
  }
  if (problems.length > 0) throw new InferenceError('InvalidRequest', `${job.requestId}: ${problems.join('; ')}`);
}

/** The error a cancelled request rejects with; it says at which step its images in passes stopped. */
export function cancelledError(
  job: InferenceJob,
  signal: AbortSignal,
  members: readonly MemberState[] = [],
): InferenceAbortedError {
  const stopped = members.map((m) => m.stepsAtDrop).filter((s): s is number => s !== undefined);
  const flagged = members.map((m) => m.stepsAtCancel).filter((s): s is number => s !== undefined);
  let where = '';
  if (stopped.length > 0) {
    const when = flagged.length > 0 ? ` at step ${Math.max(...flagged)}` : '';
    where = `${when} and left its pass after step ${Math.max(...stopped)} of ${job.steps}`;
  }
  return new InferenceAbortedError(`Request ${job.requestId} was cancelled${where}`, { cause: signal.reason });
}

/** `promise`, or a rejection as soon as the request's signal aborts (a model load is not abandoned, only awaited). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal, job: InferenceJob): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelledError(job, signal));
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Asks the member's pass to drop it at its next step; returns the steps the pass had completed by then. */
function raiseCancelFlag(pass: MemberPass, member: MemberState): number {
  Atomics.store(pass.flags, pass.members.indexOf(member), 1);
  return Atomics.load(pass.flags, pass.members.length);
}

/** The requests a backend has accepted and not yet settled. */
export class RequestTracker {
  private readonly live = new Set<RequestState>();
  private nextMemberId = 1;

  /**
   * @param removeQueued takes the matching members out of the batcher's queues and returns them (the members of a
   *   request that is cancelled or fails).
   */
  constructor(
    private readonly logger: Logger,
    private readonly counters: RequestCounters,
    private readonly removeQueued: (match: (member: MemberState) => boolean) => MemberState[],
  ) {}

  /** Requests not yet settled. */
  get size(): number {
    return this.live.size;
  }

  /**
   * Registers a request with one member per image (image i has seed + i) and hands its members to `enqueue`. The
   * promise settles once: with the images in order, with the first failure, or, when its signal aborts, with
   * InferenceAbortedError after none of its images is still being computed.
   */
  open(job: InferenceJob, hooks: InferenceHooks, enqueue: (members: MemberState[]) => void): Promise<GeneratedImage[]> {
    return new Promise<GeneratedImage[]>((resolve, reject) => {
      const request: RequestState = {
        job,
        hooks,
        members: [],
        images: new Array<GeneratedImage | undefined>(job.numImages).fill(undefined),
        lastReportedStep: 0,
        settled: false,
        cancelled: false,
        resolve,
        reject,
        onAbort: () => this.cancel(request),
      };
      for (let i = 0; i < job.numImages; i++) {
        request.members.push({
          id: this.nextMemberId++,
          request,
          index: i,
          seed: job.seed + i,
          stepsDone: 0,
          stepsAtCancel: undefined,
          stepsAtDrop: undefined,
          state: 'queued',
          pass: undefined,
        });
      }
      this.live.add(request);
      hooks.signal.addEventListener('abort', request.onAbort, { once: true });
      enqueue(request.members);
    });
  }

  /** A pass completed `step` for the listed members (ids absent from `byId` are ignored). */
  recordStep(byId: Map<number, MemberState>, step: number, totalSteps: number, memberIds: readonly number[]): void {
    const touched = new Set<RequestState>();
    for (const id of memberIds) {
      const m = byId.get(id);
      if (!m) continue;
      m.stepsDone = step;
      touched.add(m.request);
    }
    for (const request of touched) this.reportProgress(request, totalSteps);
  }

  /** The inference thread took a cancelled member out of its running pass after `completedSteps`. */
  memberDropped(member: MemberState | undefined, completedSteps: number): void {
    if (!member || member.state !== 'running') return;
    member.state = 'dropped';
    member.stepsAtDrop = completedSteps;
    member.pass = undefined;
    this.counters.droppedMembers++;
    this.finishCancellation(member.request);
  }

  /** A member's PNG is ready; the request resolves with its last one. */
  imageEncoded(m: MemberState, png: Buffer, steps: number): void {
    const request = m.request;
    if (request.settled) return;
    m.state = 'done';
    request.images[m.index] = { png, seed: m.seed, width: request.job.width, height: request.job.height };
    if (request.images.every((i) => i !== undefined)) {
      this.reportProgress(request, steps);
      this.counters.images += request.images.length;
      this.settle(request, () => request.resolve(request.images as GeneratedImage[]));
    }
  }

  /** Rejects a cancelled request once none of its images is still being computed. */
  finishCancellation(request: RequestState): void {
    if (request.settled || !request.cancelled) return;
    if (request.members.some((m) => m.state === 'running' || m.state === 'queued')) return;
    this.counters.cancelledRequests++;
    this.settle(request, () => request.reject(cancelledError(request.job, request.hooks.signal, request.members)));
  }

  /** Fails a request and withdraws its other images from queues and passes. */
  fail(request: RequestState, err: Error): void {
    if (request.settled) return;
    this.withdrawQueued(request);
    for (const m of request.members) {
      if (m.state === 'running' && m.pass) raiseCancelFlag(m.pass, m);
    }
    this.counters.failedRequests++;
    this.settle(request, () => request.reject(err));
  }

  /** A request's progress is its slowest image's; it only moves forward (an OOM retry restarts an image). */
  private reportProgress(request: RequestState, totalSteps: number): void {
    if (request.settled || request.cancelled) return;
    const step = Math.min(...request.members.map((m) => (m.state === 'done' ? totalSteps : m.stepsDone)));
    if (step <= request.lastReportedStep) return;
    request.lastReportedStep = step;
    try {
      request.hooks.onProgress(step, totalSteps);
    } catch (err) {
      this.logger.warn({ err, requestId: request.job.requestId }, 'progress hook threw');
    }
  }

  /**
   * The request's signal aborted: queued images are dropped at once, images in passes are flagged and dropped by
   * their thread at its next step; the request rejects when the last of them has stopped.
   */
  private cancel(request: RequestState): void {
    if (request.settled || request.cancelled) return;
    request.cancelled = true;
    this.withdrawQueued(request);
    for (const m of request.members) {
      if (m.state === 'running' && m.pass) m.stepsAtCancel = raiseCancelFlag(m.pass, m);
    }
    this.finishCancellation(request);
  }

  private withdrawQueued(request: RequestState): void {
    const ids = new Set(request.members.map((m) => m.id));
    for (const m of this.removeQueued((queued) => ids.has(queued.id))) m.state = 'dropped';
  }

  private settle(request: RequestState, finish: () => void): void {
    if (request.settled) return;
    request.settled = true;
    request.hooks.signal.removeEventListener('abort', request.onAbort);
    this.live.delete(request);
    finish();
  }
}
