// The ONNX Runtime inference backend: serves the models in the registry with the Stable Diffusion pipeline, on
// inference threads it owns, batching compatible requests. The main thread only verifies model files, queues images,
// and routes progress, results and cancellations; it never runs a model. This file wires the batcher, the inference
// threads and the PNG encoders to model loading (model-loader.ts) and per-request bookkeeping (request-state.ts).
import type { ModelName } from '../../core/models';
import { createLogger, type Logger } from '../../runtime/logger';
import { epochMs, InferenceError } from '../backend';
import type { BackendStatus, GeneratedImage, InferenceBackend, InferenceHooks, InferenceJob } from '../backend';
import { addPassTimings, zeroCounters } from './backend-counters';
import { OutOfMemoryBatchCap } from './batch-cap';
import { DynamicBatcher, type BatchKey } from './batcher';
import { ModelLoader } from './model-loader';
import { ModelRegistry, ModelStore, type RegistryModel } from './model-registry';
import { defaultPngThreads, type OnnxBackendOptions } from './options';
import { PngEncoderPool } from './png-encoder-pool';
import { sessionOptions } from './session-options';
import { abortable, cancelledError, RequestTracker, validateJob } from './request-state';
import type { MemberState } from './request-state';
import { passFailure, reportPassStages, type RunningPass } from './pass-outcome';
import { InferenceThreadError, InferenceThreadPool, type PassOutcome } from './thread-pool';
import { WorkRecorder, type BackendTelemetry } from '../telemetry';

export type { OnnxLoadedModelStatus } from './model-loader';

export class OnnxBackend implements InferenceBackend {
  readonly name: string;
  private readonly logger: Logger;
  private readonly pool: InferenceThreadPool;
  private readonly encoder: PngEncoderPool;
  private readonly batcher: DynamicBatcher<MemberState>;
  private readonly loader: ModelLoader;
  private readonly requests: RequestTracker;
  private readonly running = new Map<number, RunningPass>();
  /** Lowers a model's batch cap after out-of-memory failures and lifts it again as passes succeed. */
  private readonly oomCap: OutOfMemoryBatchCap;
  private nextPassId = 1;
  private started = false;
  private closed = false;
  private readonly counters = zeroCounters();
  /** One lane per inference thread, busy while a pass runs on it. */
  private readonly work: WorkRecorder;
  readonly telemetry: BackendTelemetry;

  private constructor(
    private readonly options: OnnxBackendOptions,
    private readonly registry: ModelRegistry,
    store: ModelStore,
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
        ...(options.injectOomAboveMembers !== undefined
          ? { injectOomAboveMembers: options.injectOomAboveMembers }
          : {}),
      }),
      onThreadAvailable: () => this.batcher.pump(),
    });
    this.encoder = new PngEncoderPool(options.pngThreads || defaultPngThreads(), this.logger);
    this.batcher = new DynamicBatcher<MemberState>({
      maxQueueDelayMs: options.maxQueueDelayMs,
      capFor: (model) => this.batchCap(model),
      dispatch: (key, members) => this.dispatch(key, members),
    });
    const { executionProviders } = options;
    this.loader = new ModelLoader({ registry, store, pool: this.pool, logger: this.logger, executionProviders });
    this.requests = new RequestTracker(this.logger, this.counters, (match) => this.batcher.remove(match));
    this.work = new WorkRecorder(options.threads);
    // No deviceMemory: onnxruntime does not say what it holds on a device; the worker asks the driver instead.
    this.telemetry = {
      busyFraction: (now) => this.work.busy.fraction(now),
      onPass: (listener) => this.work.onPass(listener),
      modelCorruptions: () => store.corruptionsByModel,
    };
  }

  /** Reads the registry, starts the inference threads and loads `options.preload`. */
  static async create(options: OnnxBackendOptions): Promise<OnnxBackend> {
    const registry = await ModelRegistry.load(options.registryPath);
    const store = new ModelStore(registry, options.cacheDir, options.logger ?? createLogger('onnx-backend'));
    const backend = new OnnxBackend(options, registry, store);
    for (const model of options.preload) {
      if (!registry.get(model)) throw new TypeError(`preload: ${model} is not in the registry ${options.registryPath}`);
    }
    backend.logger.debug(
      {
        sessionOptions: sessionOptions({ ...options, deviceId: options.deviceIds[0] ?? 0 }),
        inferenceThreads: options.threads,
        pngThreads: options.pngThreads || defaultPngThreads(),
      },
      'ONNX backend starting',
    );
    backend.encoder.start();
    await backend.pool.start();
    backend.started = true;
    try {
      await backend.loader.preload(options.preload);
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
    validateJob(job);
    if (hooks.signal.aborted) throw cancelledError(job, hooks.signal);
    this.counters.requests++;
    const spec = await abortable(this.loader.ensureReady(job.model), hooks.signal, job);
    if (this.closed) throw new InferenceError('InferenceFailed', `${this.name} backend is shutting down`);
    const { width, height, steps, guidanceScale } = job;
    const key: BatchKey = {
      model: job.model,
      width,
      height,
      steps,
      guidanceScale,
      scheduler: spec.scheduler,
      ...(job.soloBatch ? { solo: job.requestId } : {}),
    };
    return this.requests.open(job, hooks, (members) => this.batcher.enqueue(key, members));
  }

  private batchCap(model: string): number {
    const configured = Math.min(this.options.maxBatchSize, this.registry.get(model)?.maxBatchSize ?? Infinity);
    return Math.min(configured, this.oomCap.capFor(model));
  }

  /** Starts a pass on a free thread; false when every thread is busy. */
  private dispatch(key: BatchKey, members: MemberState[]): boolean {
    const thread = this.pool.idleThread(key.model);
    const spec = this.loader.spec(key.model);
    if (!thread || !spec) return false;
    // One cancel flag per member, then the thread's count of completed steps.
    const flags = new Int32Array(new SharedArrayBuffer(4 * (members.length + 1)));
    const pass: RunningPass = { id: this.nextPassId++, key, members, flags, thread, startedAt: epochMs() };
    for (const m of members) {
      m.state = 'running';
      m.pass = pass;
      m.stepsDone = 0;
    }
    this.running.set(pass.id, pass);
    const passEnded = this.work.passStarted({ model: key.model, images: members.length });
    const byId = new Map(members.map((m) => [m.id, m]));
    thread
      .runPass(
        pass.id,
        spec,
        members.map((m) => ({
          memberId: m.id,
          prompt: m.request.job.prompt,
          negativePrompt: m.request.job.negativePrompt,
          seed: m.seed,
        })),
        { width: key.width, height: key.height, steps: key.steps, guidanceScale: key.guidanceScale },
        pass.flags.buffer as SharedArrayBuffer,
        {
          onStep: (step, totalSteps, memberIds) => this.requests.recordStep(byId, step, totalSteps, memberIds),
          onDropped: (memberId, completedSteps) => this.requests.memberDropped(byId.get(memberId), completedSteps),
        },
      )
      .then(
        (outcome) => this.onPassDone(pass, outcome),
        (err: unknown) => this.onPassFailed(pass, err instanceof Error ? err : new Error(String(err))),
      )
      .finally(() => {
        passEnded();
        this.running.delete(pass.id);
        this.batcher.pump();
      });
    return true;
  }

  private onPassDone(pass: RunningPass, outcome: PassOutcome): void {
    this.counters.passes++;
    if (pass.members.length > 1) this.counters.batchedMembers += pass.members.length;
    this.counters.maxBatchSeen = Math.max(this.counters.maxBatchSeen, pass.members.length);
    addPassTimings(this.counters, outcome.timings);
    this.oomCap.recordSuccess(pass.key.model);
    const pixels = new Map(outcome.images.map((i) => [i.memberId, i.planes]));
    const served = pass.members.filter((m) => m.state === 'running' && pixels.has(m.id)).map((m) => m.request);
    reportPassStages(pass, outcome.timings, new Set(served));
    for (const m of pass.members) {
      if (m.state !== 'running') continue;
      m.pass = undefined;
      const planes = pixels.get(m.id);
      if (!planes || m.request.cancelled || m.request.settled) {
        // Cancelled during its last step (the thread did not decode it), or its request already failed.
        m.state = 'dropped';
        this.requests.finishCancellation(m.request);
        continue;
      }
      m.state = 'encoding';
      const encodeStart = epochMs();
      this.encoder.encode(planes, pass.key.width, pass.key.height).then(
        (png) => {
          m.request.hooks.onStage?.('png', encodeStart, epochMs());
          this.requests.imageEncoded(m, png, pass.key.steps);
        },
        (err: unknown) => {
          const message = `${m.request.job.requestId}: ${(err as Error).message}`;
          this.requests.fail(m.request, new InferenceError('InferenceFailed', message, { cause: err }));
        },
      );
    }
  }

  private onPassFailed(pass: RunningPass, err: Error): void {
    const live = pass.members.filter((m) => m.state === 'running');
    for (const m of live) m.pass = undefined;
    const outOfMemory = err instanceof InferenceThreadError && err.outOfMemory;
    if (outOfMemory && live.length > 1) {
      this.retryAsSmallerPasses(pass, live, err);
      return;
    }
    const failure = passFailure(pass.key, err, outOfMemory);
    for (const request of new Set(live.map((m) => m.request))) {
      for (const m of live) if (m.request === request) m.state = 'dropped';
      if (request.cancelled) this.requests.finishCancellation(request);
      else this.requests.fail(request, failure);
    }
  }

  /** Seed 001 oom_error policy: halve the batch and retry its members; the cap stays lower for a while. */
  private retryAsSmallerPasses(pass: RunningPass, live: MemberState[], err: Error): void {
    const cap = this.oomCap.recordOutOfMemory(pass.key.model, live.length);
    this.counters.oomRetries++;
    this.logger.warn(
      { model: pass.key.model, members: live.length, cap, err: err.message },
      'out of memory; halving the batch and retrying',
    );
    const retry: MemberState[] = [];
    for (const m of live) {
      m.stepsDone = 0;
      if (m.request.cancelled) {
        m.state = 'dropped';
        this.requests.finishCancellation(m.request);
      } else {
        m.state = 'queued';
        retry.push(m);
      }
    }
    if (retry.length > 0) this.batcher.enqueue(pass.key, retry, true);
  }

  status(): BackendStatus {
    const files = this.loader.fileCounters;
    return {
      backend: this.name,
      ready: this.started && !this.closed && this.options.preload.every((m) => this.loader.isLoaded(m)),
      loadedModels: this.loader.loadedModels(),
      counters: {
        ...this.counters,
        queuedMembers: this.batcher.queued,
        runningPasses: this.running.size,
        pngMs: this.encoder.encodeMs,
        modelFilesVerified: files.filesVerified,
        modelFilesFetched: files.filesFetched,
        modelCorruptions: files.corruptionsDetected,
        modelReloads: files.reloads,
        modelReloadFailures: files.reloadFailures,
      },
    };
  }

  /** Waits for the reload from the source that a corruption started, then loads the model on every thread again. */
  async reloadModel(model: ModelName): Promise<void> {
    await this.loader.reloadSettled(model);
    await this.loader.ensureReady(model);
  }

  /** Resolves when no reload of `model` from its source is in flight. */
  async modelReloadSettled(model: string): Promise<void> {
    await this.loader.reloadSettled(model);
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
