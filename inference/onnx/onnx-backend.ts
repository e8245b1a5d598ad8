// The ONNX Runtime inference backend: serves the models in the registry with the Stable Diffusion pipeline, on
// inference threads it owns, batching compatible requests. The main thread only verifies model files, queues images,
// and routes progress, results and cancellations; it never runs a model.
import type { ModelName } from '../../core/models';
import { createLogger, type Logger } from '../../runtime/logger';
import { InferenceAbortedError, InferenceError, type BackendStatus, type GeneratedImage, type InferenceBackend, type InferenceHooks, type InferenceJob, type LoadedModelStatus } from '../backend';
import { OutOfMemoryBatchCap } from './batch-cap';
import { DynamicBatcher, type BatchKey } from './batcher';
import { ModelRegistry, ModelStore, type RegistryModel } from './model-registry';
import type { OnnxBackendOptions } from './options';
import { VAE_SCALE } from './pipeline';
import { PngEncoderPool } from './png-encoder-pool';
import { InferenceThreadError, InferenceThreadPool, type InferenceThread, type PassOutcome } from './thread-pool';
import type { ModelLoadSpec } from './thread-protocol';

/** A loaded model in status(): the contract's fields plus how the memory figure is made up. */
export interface OnnxLoadedModelStatus extends LoadedModelStatus {
  /** Bytes of the model files, once per inference thread holding sessions. */
  readonly weightBytes: number;
  /**
   * Growth of process RSS from right after the sessions were created to the most seen after a pass of this model,
   * summed over threads: onnxruntime's arena and activations. Approximate: RSS is per process, so models and threads
   * loaded together share the figure, and device memory under CUDA is not in it (there, weights are the estimate).
   */
  readonly workspaceBytes: number;
  readonly threads: number;
}

interface RequestState {
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

interface MemberState {
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
  pass: RunningPass | undefined;
}

interface RunningPass {
  readonly id: number;
  readonly key: BatchKey;
  readonly members: MemberState[];
  readonly flags: Int32Array;
  readonly thread: InferenceThread;
}

export class OnnxBackend implements InferenceBackend {
  readonly name: string;
  private readonly logger: Logger;
  private readonly pool: InferenceThreadPool;
  private readonly encoder: PngEncoderPool;
  private readonly batcher: DynamicBatcher<MemberState>;
  private readonly modelLoads = new Map<string, Promise<ModelLoadSpec>>();
  private readonly loadSpecs = new Map<string, ModelLoadSpec>();
  private readonly running = new Map<number, RunningPass>();
  private readonly requests = new Set<RequestState>();
  /** Lowers a model's batch cap after out-of-memory failures and lifts it again as passes succeed. */
  private readonly oomCap: OutOfMemoryBatchCap;
  private nextMemberId = 1;
  private nextPassId = 1;
  private started = false;
  private closed = false;
  private readonly counters = {
    requests: 0,
    images: 0,
    cancelledRequests: 0,
    failedRequests: 0,
    passes: 0,
    /** Images that ran in passes of two or more. */
    batchedMembers: 0,
    maxBatchSeen: 0,
    oomRetries: 0,
    /** Members dropped from a running pass by cancellation. */
    droppedMembers: 0,
    /**
     * Milliseconds inside inference threads, summed over passes: whole passes and inside session.run. sessionRunMs
     * over wall time is the accelerator's duty cycle; passMs minus sessionRunMs is the pipeline's own work.
     */
    passMs: 0,
    sessionRunMs: 0,
  };

  private constructor(
    private readonly options: OnnxBackendOptions,
    private readonly registry: ModelRegistry,
    private readonly store: ModelStore,
  ) {
    this.logger = options.logger ?? createLogger('onnx-backend');
    this.name = `onnx:${options.executionProviders[0] ?? 'cpu'}`;
    this.oomCap = new OutOfMemoryBatchCap(options.maxBatchSize, options.oomRecoveryPasses);
    this.pool = new InferenceThreadPool({
      size: options.threads,
      logger: this.logger,
      threadConfig: (threadIndex) => ({
        threadIndex,
        executionProviders: options.executionProviders,
        deviceId: options.deviceIds[threadIndex % options.deviceIds.length] as number,
        intraOpNumThreads: options.intraOpNumThreads,
        intraOpSpinning: options.intraOpSpinning,
        ...(options.injectOomAboveMembers !== undefined ? { injectOomAboveMembers: options.injectOomAboveMembers } : {}),
      }),
      onThreadAvailable: () => this.batcher.pump(),
    });
    this.encoder = new PngEncoderPool(options.pngThreads, this.logger);
    this.batcher = new DynamicBatcher<MemberState>({
      maxQueueDelayMs: options.maxQueueDelayMs,
      capFor: (model) => this.batchCap(model),
      dispatch: (key, members) => this.dispatch(key, members),
    });
  }

  /** Reads the registry, starts the inference threads and loads `options.preload`. */
  static async create(options: OnnxBackendOptions): Promise<OnnxBackend> {
    const registry = await ModelRegistry.load(options.registryPath);
    const backend = new OnnxBackend(options, registry, new ModelStore(registry, options.cacheDir, options.logger ?? createLogger('onnx-backend')));
    for (const model of options.preload) {
      if (!registry.get(model)) throw new TypeError(`preload: ${model} is not in the registry ${options.registryPath}`);
    }
    backend.encoder.start();
    await backend.pool.start();
    backend.started = true;
    try {
      for (const model of options.preload) await backend.ensureModelReady(model);
    } catch (err) {
      await backend.close();
      throw err;
    }
    return backend;
  }

  supports(model: ModelName): boolean {
    return this.registry.get(model) !== undefined;
  }

  /** The registry entry of a model this backend serves (defaults for callers that fill a request). */
  model(name: string): RegistryModel | undefined {
    return this.registry.get(name);
  }

  generate(job: InferenceJob, hooks: InferenceHooks): Promise<GeneratedImage[]> {
    return this.start(job, hooks);
  }

  private async start(job: InferenceJob, hooks: InferenceHooks): Promise<GeneratedImage[]> {
    if (this.closed) throw new InferenceError('InferenceFailed', `${this.name} backend is shutting down`);
    const model = this.registry.get(job.model);
    if (!model) throw new InferenceError('ModelNotFound', `${this.name} does not serve ${job.model}`);
    this.validate(job);
    if (hooks.signal.aborted) throw this.abortError(job, hooks.signal);
    this.counters.requests++;
    const spec = await this.abortable(this.ensureModelReady(job.model), hooks.signal, job);
    if (this.closed) throw new InferenceError('InferenceFailed', `${this.name} backend is shutting down`);
    const key: BatchKey = { model: job.model, width: job.width, height: job.height, steps: job.steps, guidanceScale: job.guidanceScale, scheduler: spec.scheduler };
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
        request.members.push({ id: this.nextMemberId++, request, index: i, seed: job.seed + i, stepsDone: 0, stepsAtCancel: undefined, stepsAtDrop: undefined, state: 'queued', pass: undefined });
      }
      this.requests.add(request);
      hooks.signal.addEventListener('abort', request.onAbort, { once: true });
      this.batcher.enqueue(key, request.members);
    });
  }

  private validate(job: InferenceJob): void {
    const problems: string[] = [];
    for (const [field, value] of [['width', job.width], ['height', job.height]] as const) {
      if (!Number.isInteger(value) || value < VAE_SCALE || value % VAE_SCALE !== 0) problems.push(`${field} ${value} is not a positive multiple of ${VAE_SCALE}`);
    }
    if (!Number.isInteger(job.steps) || job.steps < 1) problems.push(`steps ${job.steps} is not a positive integer`);
    if (!Number.isInteger(job.numImages) || job.numImages < 1) problems.push(`numImages ${job.numImages} is not a positive integer`);
    if (!Number.isSafeInteger(job.seed) || job.seed < 0 || !Number.isSafeInteger(job.seed + job.numImages)) problems.push(`seed ${job.seed} is out of range`);
    if (!Number.isFinite(job.guidanceScale) || job.guidanceScale < 0) problems.push(`guidanceScale ${job.guidanceScale} is invalid`);
    if (job.loras.length > 0 || job.controlnets.length > 0) problems.push('LoRA adapters and ControlNets are not supported by the ONNX backend yet');
    if (problems.length > 0) throw new InferenceError('InvalidRequest', `${job.requestId}: ${problems.join('; ')}`);
  }

  private abortError(job: InferenceJob, signal: AbortSignal, members: readonly MemberState[] = []): InferenceAbortedError {
    const stopped = members.map((m) => m.stepsAtDrop).filter((s): s is number => s !== undefined);
    const flagged = members.map((m) => m.stepsAtCancel).filter((s): s is number => s !== undefined);
    const when = flagged.length > 0 ? ` at step ${Math.max(...flagged)}` : '';
    const where = stopped.length > 0 ? `${when} and left its pass after step ${Math.max(...stopped)} of ${job.steps}` : '';
    return new InferenceAbortedError(`Request ${job.requestId} was cancelled${where}`, { cause: signal.reason });
  }

  private abortable<T>(promise: Promise<T>, signal: AbortSignal, job: InferenceJob): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(this.abortError(job, signal));
      signal.addEventListener('abort', onAbort, { once: true });
      void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Verifies the model's files and loads its sessions on every thread, once; a failure lets the next call retry. */
  private ensureModelReady(name: string): Promise<ModelLoadSpec> {
    let loading = this.modelLoads.get(name);
    if (!loading) {
      loading = this.loadModel(name);
      this.modelLoads.set(name, loading);
      loading.catch(() => this.modelLoads.delete(name));
    }
    return loading;
  }

  private async loadModel(name: string): Promise<ModelLoadSpec> {
    const model = this.registry.get(name);
    if (!model) throw new InferenceError('ModelNotFound', `Model ${name} is not in the registry`);
    const dir = await this.store.ensureVerified(name);
    const spec: ModelLoadSpec = {
      model: name,
      dir,
      scheduler: model.scheduler,
      ...(model.vaeScalingFactor !== undefined ? { vaeScalingFactor: model.vaeScalingFactor } : {}),
    };
    try {
      await this.pool.loadEverywhere(spec);
    } catch (err) {
      const incompatible = err instanceof InferenceThreadError && err.incompatibleExport;
      throw new InferenceError(incompatible ? 'ModelNotFound' : 'InferenceFailed', `Model ${name}: creating sessions failed: ${(err as Error).message}`, { cause: err });
    }
    this.loadSpecs.set(name, spec);
    this.logger.info({ model: name, dir, executionProviders: this.options.executionProviders }, 'model loaded');
    return spec;
  }

  private batchCap(model: string): number {
    const configured = Math.min(this.options.maxBatchSize, this.registry.get(model)?.maxBatchSize ?? Infinity);
    return Math.min(configured, this.oomCap.capFor(model));
  }

  /** Starts a pass on a free thread; false when every thread is busy. */
  private dispatch(key: BatchKey, members: MemberState[]): boolean {
    const thread = this.pool.idleThread(key.model);
    const spec = this.loadSpecs.get(key.model);
    if (!thread || !spec) return false;
    const pass: RunningPass = { id: this.nextPassId++, key, members, flags: new Int32Array(new SharedArrayBuffer(4 * (members.length + 1))), thread };
    for (const m of members) {
      m.state = 'running';
      m.pass = pass;
      m.stepsDone = 0;
    }
    this.running.set(pass.id, pass);
    const byId = new Map(members.map((m) => [m.id, m]));
    thread
      .runPass(
        pass.id,
        spec,
        members.map((m) => ({ memberId: m.id, prompt: m.request.job.prompt, negativePrompt: m.request.job.negativePrompt, seed: m.seed })),
        { width: key.width, height: key.height, steps: key.steps, guidanceScale: key.guidanceScale },
        pass.flags.buffer as SharedArrayBuffer,
        {
          onStep: (step, totalSteps, memberIds) => this.onStep(byId, step, totalSteps, memberIds),
          onDropped: (memberId, completedSteps) => this.onDropped(byId.get(memberId), completedSteps),
        },
      )
      .then(
        (outcome) => this.onPassDone(pass, outcome),
        (err: unknown) => this.onPassFailed(pass, err instanceof Error ? err : new Error(String(err))),
      )
      .finally(() => {
        this.running.delete(pass.id);
        this.batcher.pump();
      });
    return true;
  }

  private onStep(byId: Map<number, MemberState>, step: number, totalSteps: number, memberIds: readonly number[]): void {
    const touched = new Set<RequestState>();
    for (const id of memberIds) {
      const m = byId.get(id);
      if (!m) continue;
      m.stepsDone = step;
      touched.add(m.request);
    }
    for (const request of touched) this.reportProgress(request, totalSteps);
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

  private onDropped(member: MemberState | undefined, completedSteps: number): void {
    if (!member || member.state !== 'running') return;
    member.state = 'dropped';
    member.stepsAtDrop = completedSteps;
    member.pass = undefined;
    this.counters.droppedMembers++;
    this.finishCancellation(member.request);
  }

  private onPassDone(pass: RunningPass, outcome: PassOutcome): void {
    this.counters.passes++;
    if (pass.members.length > 1) this.counters.batchedMembers += pass.members.length;
    this.counters.maxBatchSeen = Math.max(this.counters.maxBatchSeen, pass.members.length);
    this.counters.passMs += outcome.timings.totalMs;
    this.counters.sessionRunMs += outcome.timings.sessionRunMs;
    this.oomCap.recordSuccess(pass.key.model);
    const pixels = new Map(outcome.images.map((i) => [i.memberId, i.rgba]));
    for (const m of pass.members) {
      if (m.state !== 'running') continue;
      m.pass = undefined;
      const rgba = pixels.get(m.id);
      if (!rgba || m.request.cancelled || m.request.settled) {
        // Cancelled during its last step (the thread did not decode it), or its request already failed.
        m.state = 'dropped';
        this.finishCancellation(m.request);
        continue;
      }
      m.state = 'encoding';
      this.encoder.encode(rgba, pass.key.width, pass.key.height).then(
        (png) => this.onImageEncoded(m, png, pass.key.steps),
        (err: unknown) => this.fail(m.request, new InferenceError('InferenceFailed', `${m.request.job.requestId}: ${(err as Error).message}`, { cause: err })),
      );
    }
  }

  private onImageEncoded(m: MemberState, png: Buffer, steps: number): void {
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

  private onPassFailed(pass: RunningPass, err: Error): void {
    const live = pass.members.filter((m) => m.state === 'running');
    for (const m of live) m.pass = undefined;
    const outOfMemory = err instanceof InferenceThreadError && err.outOfMemory;
    if (outOfMemory && live.length > 1) {
      // Seed 001 oom_error policy: halve the batch and retry its members; the cap stays lower for a while.
      const cap = this.oomCap.recordOutOfMemory(pass.key.model, live.length);
      this.counters.oomRetries++;
      this.logger.warn({ model: pass.key.model, members: live.length, cap, err: err.message }, 'out of memory; halving the batch and retrying');
      const retry: MemberState[] = [];
      for (const m of live) {
        m.stepsDone = 0;
        if (m.request.cancelled) {
          m.state = 'dropped';
          this.finishCancellation(m.request);
        } else {
          m.state = 'queued';
          retry.push(m);
        }
      }
      if (retry.length > 0) this.batcher.enqueue(pass.key, retry, true);
      return;
    }
    const failure = outOfMemory
      ? new InferenceError('OutOfMemory', `${pass.key.model} ${pass.key.width}x${pass.key.height}: out of memory for a single image: ${err.message}`, { cause: err })
      : new InferenceError(err instanceof InferenceThreadError && err.incompatibleExport ? 'ModelNotFound' : 'InferenceFailed', `${pass.key.model}: ${err.message}`, {
          cause: err,
        });
    for (const request of new Set(live.map((m) => m.request))) {
      for (const m of live) if (m.request === request) m.state = 'dropped';
      if (request.cancelled) this.finishCancellation(request);
      else this.fail(request, failure);
    }
  }

  private cancel(request: RequestState): void {
    if (request.settled || request.cancelled) return;
    request.cancelled = true;
    const ids = new Set(request.members.map((m) => m.id));
    for (const m of this.batcher.remove((queued) => ids.has(queued.id))) m.state = 'dropped';
    for (const m of request.members) {
      if (m.state === 'running' && m.pass) {
        Atomics.store(m.pass.flags, m.pass.members.indexOf(m), 1);
        m.stepsAtCancel = Atomics.load(m.pass.flags, m.pass.members.length);
      }
    }
    this.finishCancellation(request);
  }

  /** Rejects a cancelled request once none of its images is still being computed. */
  private finishCancellation(request: RequestState): void {
    if (request.settled || !request.cancelled) return;
    if (request.members.some((m) => m.state === 'running' || m.state === 'queued')) return;
    this.counters.cancelledRequests++;
    this.settle(request, () => request.reject(this.abortError(request.job, request.hooks.signal, request.members)));
  }

  /** Fails a request and withdraws its other images from queues and passes. */
  private fail(request: RequestState, err: Error): void {
    if (request.settled) return;
    const ids = new Set(request.members.map((m) => m.id));
    for (const m of this.batcher.remove((queued) => ids.has(queued.id))) m.state = 'dropped';
    for (const m of request.members) {
      if (m.state === 'running' && m.pass) Atomics.store(m.pass.flags, m.pass.members.indexOf(m), 1);
    }
    this.counters.failedRequests++;
    this.settle(request, () => request.reject(err));
  }

  private settle(request: RequestState, finish: () => void): void {
    if (request.settled) return;
    request.settled = true;
    request.hooks.signal.removeEventListener('abort', request.onAbort);
    this.requests.delete(request);
    finish();
  }

  status(): BackendStatus {
    const models = new Map<string, { weightBytes: number; workspaceBytes: number; threads: number; executionProvider: string }>();
    for (const thread of this.pool.threads) {
      for (const report of thread.models.values()) {
        const entry = models.get(report.model) ?? { weightBytes: 0, workspaceBytes: 0, threads: 0, executionProvider: report.executionProvider };
        entry.weightBytes += report.weightBytes;
        entry.workspaceBytes += report.workspaceBytes;
        entry.threads++;
        models.set(report.model, entry);
      }
    }
    const loadedModels: OnnxLoadedModelStatus[] = [...models].map(([model, m]) => ({
      model,
      memoryBytes: m.weightBytes + m.workspaceBytes,
      executionProvider: m.executionProvider,
      weightBytes: m.weightBytes,
      workspaceBytes: m.workspaceBytes,
      threads: m.threads,
    }));
    const store = this.store.counters;
    return {
      backend: this.name,
      ready: this.started && !this.closed && this.options.preload.every((m) => this.loadSpecs.has(m)),
      loadedModels,
      counters: {
        ...this.counters,
        queuedMembers: this.batcher.queued,
        runningPasses: this.running.size,
        pngMs: this.encoder.encodeMs,
        modelFilesVerified: store.filesVerified,
        modelFilesFetched: store.filesFetched,
        modelCorruptions: store.corruptionsDetected,
        modelReloads: store.reloads,
        modelReloadFailures: store.reloadFailures,
      },
    };
  }

  /** Resolves when no reload of `model` from its source is in flight. */
  async modelReloadSettled(model: string): Promise<void> {
    await this.store.settled(model);
  }

  /** Stops accepting requests, lets queued and running ones finish, then stops the inference threads. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drained();
    await Promise.all([this.pool.close(), this.encoder.close()]);
  }

  private drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.requests.size === 0) resolve();
        else setTimeout(check, 20);
      };
      check();
    });
  }
}
