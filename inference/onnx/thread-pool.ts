// The inference threads a backend owns: one per concurrent pass (on a GPU, one per device). The pool starts them,
// routes their messages to the pass or load that asked, and replaces a thread that dies (its pass fails, retryable).
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../../runtime/logger';
import type { PassImage, PassMember, PassParams, PassTimings } from './pass';
import type {
  FromThread,
  InferenceThreadConfig,
  LoadedModelReport,
  ModelLoadSpec,
  SerializedError,
  ToThread,
} from './thread-protocol';
import { spawnWorker } from './worker-entry';

/** A pass or load that failed inside an inference thread, or the thread itself died. */
export class InferenceThreadError extends Error {
  override readonly name = 'InferenceThreadError';
  readonly outOfMemory: boolean;
  readonly incompatibleExport: boolean;

  constructor(error: SerializedError | { message: string }, options?: { cause?: unknown }) {
    super(error.message, options);
    this.outOfMemory = 'outOfMemory' in error && error.outOfMemory;
    this.incompatibleExport = 'incompatibleExport' in error && error.incompatibleExport;
    if ('stack' in error && error.stack !== undefined) this.stack = error.stack;
  }
}

export interface PassCallbacks {
  onStep(step: number, totalSteps: number, memberIds: readonly number[]): void;
  onDropped(memberId: number, completedSteps: number): void;
}

export interface PassOutcome {
  readonly images: readonly PassImage[];
  readonly timings: PassTimings;
}

interface InFlightPass {
  readonly passId: number;
  readonly callbacks: PassCallbacks;
  readonly resolve: (outcome: PassOutcome) => void;
  readonly reject: (err: Error) => void;
}

export class InferenceThread {
  /** Models whose sessions this thread holds, with their last memory report. */
  readonly models = new Map<string, LoadedModelReport>();
  private worker!: Worker;
  private ready!: Promise<void>;
  private pass: InFlightPass | undefined;
  private readonly loads = new Map<
    number,
    { resolve: (r: LoadedModelReport | undefined) => void; reject: (err: Error) => void }
  >();
  private nextRequestId = 1;
  private closing = false;

  constructor(
    readonly config: InferenceThreadConfig,
    private readonly logger: Logger,
    private readonly onRestart: () => void,
  ) {}

  get busy(): boolean {
    return this.pass !== undefined;
  }

  start(): Promise<void> {
    const worker = spawnWorker('inference-thread', this.config);
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      const onExit = (code: number): void =>
        reject(
          new InferenceThreadError({
            message: `inference thread ${this.config.threadIndex} exited with code ${code} while starting`,
          }),
        );
      const onReady = (m: FromThread): void => {
        if (m.type !== 'ready') return;
        worker.off('message', onReady);
        worker.off('error', reject);
        worker.off('exit', onExit);
        resolve();
      };
      worker.on('message', onReady);
      worker.once('error', reject);
      worker.once('exit', onExit);
    });
    worker.on('message', (m: FromThread) => this.dispatch(m));
    worker.on('error', (err) => this.logger.error({ err, thread: this.config.threadIndex }, 'inference thread error'));
    worker.on('exit', (code) => this.onExit(worker, code));
    return this.ready;
  }

  private dispatch(m: FromThread): void {
    switch (m.type) {
      case 'ready':
        return;
      case 'loaded':
        this.models.set(m.report.model, m.report);
        this.loads.get(m.requestId)?.resolve(m.report);
        this.loads.delete(m.requestId);
        return;
      case 'unloaded':
        this.loads.get(m.requestId)?.resolve(undefined);
        this.loads.delete(m.requestId);
        return;
      case 'load-failed':
        this.loads.get(m.requestId)?.reject(new InferenceThreadError(m.error));
        this.loads.delete(m.requestId);
        return;
      case 'step':
        if (this.pass?.passId === m.passId) this.pass.callbacks.onStep(m.step, m.totalSteps, m.memberIds);
        return;
      case 'dropped':
        if (this.pass?.passId === m.passId) this.pass.callbacks.onDropped(m.memberId, m.completedSteps);
        return;
      case 'pass-done': {
        if (this.pass?.passId !== m.passId) return;
        const pass = this.pass;
        this.pass = undefined;
        this.models.set(m.report.model, m.report);
        pass.resolve({ images: m.images, timings: m.timings });
        return;
      }
      case 'pass-failed': {
        if (this.pass?.passId !== m.passId) return;
        const pass = this.pass;
        this.pass = undefined;
        pass.reject(new InferenceThreadError(m.error));
        return;
      }
    }
  }

  private onExit(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    const err = new InferenceThreadError({
      message: `inference thread ${this.config.threadIndex} exited with code ${code}`,
    });
    const pass = this.pass;
    this.pass = undefined;
    this.models.clear();
    for (const load of this.loads.values()) load.reject(err);
    this.loads.clear();
    pass?.reject(err);
    if (this.closing) return;
    this.logger.error({ thread: this.config.threadIndex, code }, 'inference thread died; starting a new one');
    this.start().then(this.onRestart, (startErr: unknown) =>
      this.logger.error({ err: startErr }, 'inference thread restart failed'),
    );
  }

  private send(message: ToThread): void {
    this.worker.postMessage(message);
  }

  async load(spec: ModelLoadSpec): Promise<LoadedModelReport> {
    await this.ready;
    const requestId = this.nextRequestId++;
    const report = await new Promise<LoadedModelReport | undefined>((resolve, reject) => {
      this.loads.set(requestId, { resolve, reject });
      this.send({ type: 'load', requestId, spec });
    });
    return report as LoadedModelReport;
  }

  async unload(model: string): Promise<void> {
    await this.ready;
    const requestId = this.nextRequestId++;
    this.models.delete(model);
    await new Promise<LoadedModelReport | undefined>((resolve, reject) => {
      this.loads.set(requestId, { resolve, reject });
      this.send({ type: 'unload', requestId, model });
    });
  }

  /** Runs one pass; the thread must be idle. `cancelFlags` is shared: set flags[i] to cancel members[i]. */
  runPass(
    passId: number,
    spec: ModelLoadSpec,
    members: readonly PassMember[],
    params: PassParams,
    cancelFlags: SharedArrayBuffer,
    callbacks: PassCallbacks,
  ): Promise<PassOutcome> {
    if (this.pass) throw new Error(`inference thread ${this.config.threadIndex} is busy`);
    return new Promise<PassOutcome>((resolve, reject) => {
      this.pass = { passId, callbacks, resolve, reject };
      this.send({ type: 'run', passId, spec, members, params, cancelFlags });
    });
  }

  async terminate(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}

export interface ThreadPoolOptions {
  readonly size: number;
  readonly threadConfig: (threadIndex: number) => InferenceThreadConfig;
  readonly logger: Logger;
  /** Called when a thread becomes free again after a restart (passes free it through their own promises). */
  readonly onThreadAvailable: () => void;
}

export class InferenceThreadPool {
  readonly threads: readonly InferenceThread[];

  constructor(private readonly options: ThreadPoolOptions) {
    this.threads = Array.from(
      { length: options.size },
      (_, i) => new InferenceThread(options.threadConfig(i), options.logger, options.onThreadAvailable),
    );
  }

  async start(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.start()));
  }

  /** An idle thread, preferring one that already holds `model`'s sessions. */
  idleThread(model: string): InferenceThread | undefined {
    const idle = this.threads.filter((t) => !t.busy);
    return idle.find((t) => t.models.has(model)) ?? idle[0];
  }

  loadEverywhere(spec: ModelLoadSpec): Promise<LoadedModelReport[]> {
    return Promise.all(this.threads.map((t) => t.load(spec)));
  }

  async unloadEverywhere(model: string): Promise<void> {
    await Promise.all(this.threads.map((t) => t.unload(model)));
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
