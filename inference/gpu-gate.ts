// One device, one job at a time, taken in priority order: the simulated GPU's queue. A worker holds several requests
// at once (its slots, sized for the ONNX backend's batches), and a plain first-come queue would run a relax request
// it took first ahead of a fast or turbo one it took a moment later, undoing the priority Temporal dispatched them
// by. Waiters are served by Temporal priority key (1 first), then arrival.
import { InferenceAbortedError } from './backend';

interface Waiter {
  readonly priority: number;
  readonly seq: number;
  readonly grant: () => void;
}

/** Priority key of a job that names none: Temporal's default (3). */
export const DEFAULT_PRIORITY_KEY = 3;

export class PriorityGate {
  private busy = false;
  private seq = 0;
  private readonly waiters: Waiter[] = [];

  /** Jobs waiting for the device. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with the function that hands the device on, once every job of higher priority (or of the same priority
   * and earlier) has left it. Rejects with an AbortError if `signal` aborts first; the job then gives up its place.
   */
  acquire(priority: number, signal: AbortSignal, what: string): Promise<() => void> {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.busy = false;
      this.next();
    };
    if (!this.busy && this.waiters.length === 0) {
      signal.throwIfAborted();
      this.busy = true;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        seq: this.seq++,
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new InferenceAbortedError(`${what} was cancelled while queued for the GPU`, { cause: signal.reason }));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      const at = this.waiters.findIndex((w) => w.priority > priority);
      this.waiters.splice(at < 0 ? this.waiters.length : at, 0, waiter);
    });
  }

  private next(): void {
    const waiter = this.waiters.shift();
    if (!waiter) return;
    this.busy = true;
    waiter.grant();
  }
}
