// One device, one job at a time, taken in priority order: the simulated GPU's queue. A worker holds several requests
// at once (its slots, sized for the ONNX backend's batches), and a plain first-come queue would run a relax request
// it took first ahead of a fast or turbo one it took a moment later, undoing the priority Temporal dispatched them
// by. Waiters are served by Temporal priority key (1 first), then arrival.
//
// A job hands the device over between two of its steps when a job of higher priority waits (`GpuHold.yieldToHigher`):
// a relax pass pauses for turbo or fast work that arrives while it runs, instead of making it wait for the whole pass
// (seed 004: background work halts when interactive work arrives), and resumes where it was afterwards.
import { InferenceAbortedError } from './backend';

interface Waiter {
  readonly priority: number;
  readonly seq: number;
  readonly grant: () => void;
}

/** Priority key of a job that names none: Temporal's default (3). */
export const DEFAULT_PRIORITY_KEY = 3;

/**
 * Device priority of background work: past every Temporal key (1-5), so any other job goes first. A background job's
 * device priority is this plus its own key.
 */
export const BACKGROUND_PRIORITY = 10;

/**
 * How long the device stays free for more foreground work after a foreground job leaves it, before background work
 * gets it, ms: the worker's next turbo or fast task is a poll away when its fleet has a backlog (workers/relax-lane.ts).
 */
export const BACKGROUND_RESUME_GRACE_MS = 100;

/** The device, held by one job: hand it on when done, or lend it to higher-priority work between steps. */
export interface GpuHold {
  /** Hands the device on (once; later calls do nothing). */
  release(): void;
  /** Whether a job of higher priority waits for the device. */
  mustYield(): boolean;
  /**
   * When a job of higher priority waits, hands the device to it and resolves once it is this job's turn again;
   * resolves at once otherwise. Resolves with the milliseconds the job waited. Rejects with an AbortError if `signal`
   * aborts while the job waits; the job then holds nothing.
   */
  yieldToHigher(signal: AbortSignal): Promise<number>;
}

export class PriorityGate {
  private busy = false;
  private seq = 0;
  private readonly waiters: Waiter[] = [];
  /** Set while the device is kept free for foreground work after a foreground job left it. */
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly resumeGraceMs = BACKGROUND_RESUME_GRACE_MS) {}

  /** Jobs waiting for the device. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with the device, once every job of higher priority (or of the same priority and earlier) has left it.
   * Rejects with an AbortError if `signal` aborts first; the job then gives up its place.
   */
  async acquire(priority: number, signal: AbortSignal, what: string): Promise<GpuHold> {
    let holding = false;
    let released = false;
    const seq = this.seq++;
    const hold: GpuHold = {
      release: () => {
        if (released) return;
        released = true;
        if (!holding) return;
        holding = false;
        this.busy = false;
        this.next(priority);
      },
      mustYield: () => holding && this.waiters.some((w) => w.priority < priority),
      yieldToHigher: async (abort) => {
        if (released || !hold.mustYield()) return 0;
        const since = performance.now();
        holding = false;
        this.busy = false;
        const back = this.wait({ priority, seq }, abort, what);
        await back;
        holding = true;
        return performance.now() - since;
      },
    };
    if (!this.busy && this.waiters.length === 0 && (priority < BACKGROUND_PRIORITY || !this.graceTimer)) {
      signal.throwIfAborted();
      this.busy = true;
    } else {
      await this.wait({ priority, seq }, signal, what);
    }
    holding = true;
    return hold;
  }

  /** Queues a job by priority, then by its first arrival; resolves once the device is its. */
  private wait(job: { priority: number; seq: number }, signal: AbortSignal, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        ...job,
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new InferenceAbortedError(`${what} was cancelled while queued for the GPU`, { cause: signal.reason }));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      const at = this.waiters.findIndex(
        (w) => w.priority > job.priority || (w.priority === job.priority && w.seq > job.seq),
      );
      this.waiters.splice(at < 0 ? this.waiters.length : at, 0, waiter);
      this.next();
    });
  }

  /**
   * Gives a free device to the first waiter. Background work waits out the grace after a foreground job (`released`
   * is the priority of the job that just left), and any foreground arrival during it goes first.
   */
  private next(released?: number): void {
    const head = this.waiters[0];
    if (this.busy || !head) return;
    if (head.priority >= BACKGROUND_PRIORITY) {
      if (released !== undefined && released < BACKGROUND_PRIORITY && this.resumeGraceMs > 0) {
        clearTimeout(this.graceTimer);
        this.graceTimer = setTimeout(() => {
          this.graceTimer = undefined;
          this.next();
        }, this.resumeGraceMs);
        this.graceTimer.unref();
        return;
      }
      if (this.graceTimer) return;
    } else if (this.graceTimer) {
      clearTimeout(this.graceTimer);
      this.graceTimer = undefined;
    }
    this.waiters.shift();
    this.busy = true;
    head.grant();
  }
}
