// The simulated GPU backend's render threads: they draw and PNG-encode its images so that a large request does not
// stall the GPU worker's event loop (a blocked loop misses Temporal heartbeats and the request is retried as if the
// worker had died). Threads start on first use and are unref'd while idle, because many hosts (tests above all)
// create a backend and never close it; close() terminates them. A cancelled render rejects at once and its result
// is dropped when it arrives; a thread that dies fails its renders with InferenceFailed and is replaced on next use.
import type { Worker } from 'node:worker_threads';
import { InferenceAbortedError, InferenceError } from './backend';
import type { RenderReply, RenderRequest } from './simulated-render-thread';
import { spawnThread } from './threads';

export interface RenderParams {
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly prompt: string;
}

/** Starts a render thread (inference/threads.ts: the compiled `.js`, or the source under tsx). */
export function spawnRenderThread(): Worker {
  return spawnThread(__dirname, 'simulated-render-thread');
}

interface PendingRender {
  /** Resolves or rejects the caller's promise; later calls (the result of a cancelled render) do nothing. */
  settle(result: Buffer | Error): void;
}

interface RenderThread {
  readonly worker: Worker;
  /** Renders posted and not answered yet, including cancelled ones that still occupy the thread. */
  readonly pending: Map<number, PendingRender>;
  /** Renders someone still waits for: while there are any the thread keeps the process alive. */
  waiting: number;
  /** The uncaught error that killed the thread, reported with its exit. */
  failure?: Error;
}

export class SimulatedRenderPool {
  private readonly slots: (RenderThread | undefined)[];
  private nextId = 1;
  private closed = false;

  /** `spawn` starts one thread; tests substitute threads that crash. */
  constructor(
    readonly size: number,
    private readonly spawn: () => Worker = spawnRenderThread,
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new TypeError(`render threads must be a positive integer, got ${size}`);
    this.slots = Array.from({ length: size }, () => undefined);
  }

  /** Threads running now (they start on first use). */
  get threads(): number {
    return this.slots.filter((t) => t !== undefined).length;
  }

  /**
   * The PNG of renderSimulatedImage(params). Rejects with an AbortError as soon as `signal` aborts, and with an
   * InferenceError (InferenceFailed) when the thread fails or dies, or the pool closes.
   */
  render(params: RenderParams, signal: AbortSignal, requestId: string): Promise<Buffer> {
    if (this.closed)
      return Promise.reject(new InferenceError('InferenceFailed', 'The simulated GPU backend is shutting down'));
    const aborted = () =>
      new InferenceAbortedError(`Request ${requestId} was cancelled while its images were being encoded`, {
        cause: signal.reason,
      });
    if (signal.aborted) return Promise.reject(aborted());
    const thread = this.pick();
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      let done = false;
      const onAbort = () => entry.settle(aborted());
      const entry: PendingRender = {
        settle: (result) => {
          if (done) return;
          done = true;
          signal.removeEventListener('abort', onAbort);
          if (--thread.waiting === 0) thread.worker.unref();
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      };
      thread.pending.set(id, entry);
      if (thread.waiting++ === 0) thread.worker.ref();
      signal.addEventListener('abort', onAbort, { once: true });
      const request: RenderRequest = { id, ...params };
      thread.worker.postMessage(request);
    });
  }

  /** The least busy thread, preferring one already started to starting another. */
  private pick(): RenderThread {
    let index = 0;
    let least = Infinity;
    for (const [i, thread] of this.slots.entries()) {
      // An unstarted slot ranks just behind an idle thread: threads start only when the ones running are busy.
      const load = thread ? thread.pending.size : 0.5;
      if (load < least) [index, least] = [i, load];
    }
    return this.slots[index] ?? this.start(index);
  }

  private start(index: number): RenderThread {
    const worker = this.spawn();
    const thread: RenderThread = { worker, pending: new Map(), waiting: 0 };
    worker.unref();
    worker.on('message', (m: RenderReply) => {
      const entry = thread.pending.get(m.id);
      if (!entry) return;
      thread.pending.delete(m.id);
      if ('error' in m)
        entry.settle(new InferenceError('InferenceFailed', `Rendering a simulated image failed: ${m.error}`));
      else entry.settle(Buffer.from(m.png.buffer, m.png.byteOffset, m.png.byteLength));
    });
    // Without a listener an uncaught error in the thread would be rethrown here and end the whole process.
    worker.on('error', (err) => (thread.failure = err));
    worker.on('exit', (code) => {
      if (this.slots[index] === thread) this.slots[index] = undefined;
      const err = this.closed
        ? new InferenceError('InferenceFailed', 'The simulated GPU backend shut down while encoding images')
        : new InferenceError(
            'InferenceFailed',
            `A simulated render thread exited with code ${code}` +
              (thread.failure ? `: ${thread.failure.message}` : ''),
            { cause: thread.failure },
          );
      for (const entry of thread.pending.values()) entry.settle(err);
      thread.pending.clear();
    });
    this.slots[index] = thread;
    return thread;
  }

  async close(): Promise<void> {
    this.closed = true;
    const running = this.slots.filter((t) => t !== undefined);
    this.slots.fill(undefined);
    await Promise.all(running.map((t) => t.worker.terminate()));
  }
}
