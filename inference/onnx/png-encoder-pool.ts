// PNG encoding off both the main thread and the inference threads: a pass's images are converted to bytes and
// compressed here while the inference thread (and its GPU) starts the next pass. Jobs go to the thread with the fewest
// in flight.
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../../runtime/logger';
import type { EncodeReply, EncodeRequest } from './png-encoder-thread';
import { spawnWorker } from './worker-entry';

interface EncoderThread {
  worker: Worker;
  readonly pending: Map<number, { resolve: (png: Buffer) => void; reject: (err: Error) => void }>;
}

export class PngEncoderPool {
  private readonly threads: EncoderThread[] = [];
  private nextId = 1;
  private closing = false;
  /** Milliseconds spent encoding, all threads. */
  encodeMs = 0;

  constructor(
    private readonly size: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    for (let i = 0; i < this.size; i++)
      this.threads.push(this.spawn({ worker: undefined as unknown as Worker, pending: new Map() }));
  }

  private spawn(thread: EncoderThread): EncoderThread {
    const worker = spawnWorker('png-encoder-thread', undefined);
    thread.worker = worker;
    worker.on('message', (m: EncodeReply) => {
      const job = thread.pending.get(m.id);
      thread.pending.delete(m.id);
      if (!job) return;
      if ('error' in m) job.reject(new Error(`PNG encoding failed: ${m.error}`));
      else {
        this.encodeMs += m.ms;
        job.resolve(Buffer.from(m.png.buffer, m.png.byteOffset, m.png.byteLength));
      }
    });
    worker.on('error', (err) => this.logger.error({ err }, 'PNG encoder thread error'));
    worker.on('exit', (code) => {
      if (thread.worker !== worker) return;
      const err = new Error(`PNG encoder thread exited with code ${code}`);
      for (const job of thread.pending.values()) job.reject(err);
      thread.pending.clear();
      if (!this.closing) this.spawn(thread);
    });
    return thread;
  }

  /** Encodes one image's float planes (which must own their ArrayBuffer: it is transferred, not copied). */
  encode(planes: Float32Array, width: number, height: number): Promise<Buffer> {
    const thread = this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      const request: EncodeRequest = { id, planes, width, height };
      thread.worker.postMessage(request, [planes.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}
