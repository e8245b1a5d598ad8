// The relax lane of a GPU worker (issue 11, seed 004: background work runs on idle capacity only and halts within
// 500 ms when interactive work arrives).
//
// Relax requests wait in their fleet's relax lane, a task queue of its own (`<region>.gpu-<type>.relax`), and every
// GPU worker runs two Temporal Workers: one on the fleet's queue (turbo and fast, `slots` at a time) and one on the
// relax lane. The relax Worker's slots come from the custom slot supplier below, which hands out a slot (and so lets
// the Worker poll for one relax task) only while the worker is idle:
//   - it holds no turbo or fast task, and none ended within the last `resumeGraceMs` (the interactive Worker's next
//     poll is a few milliseconds away then: a fleet backlog of turbo or fast work reaches it before relax does);
//   - fewer than `relaxSlots` relax tasks are in hand.
// Interactive work keeps every slot of its own: relax never takes one, so an interactive arrival always finds a slot
// free. Once it is in hand, no new relax slot is handed out, and the device runs it before any relax step: the
// simulated GPU hands the device over between two denoising steps (inference/gpu-gate.ts), and a relax pass already
// running is paused there, not killed; it finishes once the interactive work is done.
//
// Why no fleet-wide signal: a turbo or fast backlog in Temporal means no worker of the fleet has a free interactive
// slot polling, so every worker already holds interactive work and its relax lane is closed. A held worker (paused,
// unhealthy, breaker open) shuts both Workers down.
import type {
  ActivityInboundCallsInterceptor,
  ActivitySlotInfo,
  CustomSlotSupplier,
  SlotPermit,
  WorkerOptions,
} from '@temporalio/worker';

export interface RelaxLaneOptions {
  /** Relax tasks the worker holds at most at once. */
  readonly relaxSlots: number;
  /** How long after its last interactive task ends the worker waits before it takes relax work again, ms. */
  readonly resumeGraceMs?: number;
  readonly now?: () => number;
}

/** Default wait after the last interactive task: several poll round trips on a local server, far under 500 ms. */
export const RELAX_RESUME_GRACE_MS = 250;

/**
 * Relax slots of a worker with `slots` interactive slots: 95% of them, at least one. The 5% kept back is the device
 * share an interactive arrival finds free when the backend runs several jobs at once (the ONNX backend's batches).
 */
export function defaultRelaxSlots(slots: number): number {
  return Math.max(1, Math.floor(slots * 0.95));
}

export interface RelaxLaneStats {
  /** Turbo and fast tasks in hand. */
  readonly interactive: number;
  /** Relax slots handed out (polling or running). */
  readonly relaxHeld: number;
  readonly relaxSlots: number;
  /** Whether a relax slot would be handed out now. */
  readonly open: boolean;
  /** Relax slots handed out since start. */
  readonly relaxGranted: number;
}

export class RelaxLane {
  private interactive = 0;
  private lastInteractiveEnd = Number.NEGATIVE_INFINITY;
  private relaxHeld = 0;
  private relaxGranted = 0;
  private readonly waiters: (() => boolean)[] = [];
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly resumeGraceMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RelaxLaneOptions) {
    if (!Number.isInteger(options.relaxSlots) || options.relaxSlots < 1)
      throw new TypeError(`relaxSlots must be a positive integer, got ${options.relaxSlots}`);
    this.resumeGraceMs = options.resumeGraceMs ?? RELAX_RESUME_GRACE_MS;
    this.now = options.now ?? Date.now;
  }

  get open(): boolean {
    return this.idle && this.relaxHeld < this.options.relaxSlots;
  }

  stats(): RelaxLaneStats {
    const { interactive, relaxHeld, relaxGranted, open } = this;
    return { interactive, relaxHeld, relaxSlots: this.options.relaxSlots, open, relaxGranted };
  }

  /** A turbo or fast task starts on this worker: the lane closes. */
  interactiveStarted(): void {
    this.interactive++;
  }

  /** A turbo or fast task ended: the lane opens again after the grace, if nothing else came. */
  interactiveEnded(): void {
    this.interactive = Math.max(0, this.interactive - 1);
    this.lastInteractiveEnd = this.now();
    if (this.interactive === 0) this.recheckAfter(this.resumeGraceMs);
  }

  /** The relax Worker's slot supplier. */
  slotSupplier(): CustomSlotSupplier<ActivitySlotInfo> {
    return {
      type: 'custom',
      reserveSlot: (_ctx, abortSignal) => this.reserve(abortSignal),
      // Eager dispatch never applies (no workflow runs on a GPU worker); grant one only if the lane is open anyway.
      tryReserveSlot: () => (this.open ? this.grant() : null),
      markSlotUsed: () => undefined,
      releaseSlot: () => {
        this.relaxHeld = Math.max(0, this.relaxHeld - 1);
        this.recheck();
      },
    };
  }

  /** An activity interceptor for the interactive Worker: counts its tasks in hand. */
  interactiveInterceptors(): NonNullable<NonNullable<WorkerOptions['interceptors']>['activity']> {
    const execute: ActivityInboundCallsInterceptor['execute'] = async (input, next) => {
      this.interactiveStarted();
      try {
        return await next(input);
      } finally {
        this.interactiveEnded();
      }
    };
    return [() => ({ inbound: { execute } })];
  }

  private grant(): SlotPermit {
    this.relaxHeld++;
    this.relaxGranted++;
    return {};
  }

  private async reserve(abortSignal: AbortSignal): Promise<SlotPermit> {
    let permit: SlotPermit | undefined;
    // Rejected with the signal's own reason: the SDK takes that as a reservation it withdrew, anything else as a fault.
    await this.when(
      () => {
        if (!this.open) return false;
        permit = this.grant();
        return true;
      },
      abortSignal,
      () => abortSignal.reason as unknown,
    );
    return permit ?? this.grant();
  }

  /**
   * Resolves once the worker holds no interactive work and none ended within the grace. A relax task can arrive
   * through a poll the lane allowed while the worker was idle, after interactive work came: the inference activity
   * waits here before it says `generating` (activities/inference.ts).
   */
  whenIdle(signal: AbortSignal): Promise<void> {
    return this.when(
      () => this.idle,
      signal,
      () => Object.assign(new Error('waiting for the worker to be idle was aborted'), { name: 'AbortError' }),
    );
  }

  private get idle(): boolean {
    return this.interactive === 0 && this.now() - this.lastInteractiveEnd >= this.resumeGraceMs;
  }

  /**
   * Resolves once `attempt` returns true, tried now and at every change, first come first served; rejects with
   * `aborted()` if `signal` aborts first.
   */
  private when(attempt: () => boolean, signal: AbortSignal, aborted: () => unknown): Promise<void> {
    if (attempt()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(aborted());
      };
      const waiter = (): boolean => {
        if (!attempt()) return false;
        signal.removeEventListener('abort', onAbort);
        resolve();
        return true;
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.recheck();
    });
  }

  /**
   * Settles every waiter whose condition holds now, oldest first. Not only the head: a relax task waiting for the
   * worker to be idle must not queue behind a reservation that waits for a relax slot it holds itself.
   */
  private recheck(): void {
    for (const waiter of [...this.waiters]) {
      if (!waiter()) continue;
      const index = this.waiters.indexOf(waiter);
      if (index >= 0) this.waiters.splice(index, 1);
    }
    // Closed by the grace alone: look again when it is over (other changes call recheck themselves).
    const graceLeft = this.lastInteractiveEnd + this.resumeGraceMs - this.now();
    if (this.waiters.length > 0 && this.interactive === 0 && graceLeft > 0) this.recheckAfter(graceLeft);
  }

  private recheckAfter(ms: number): void {
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => this.recheck(), Math.max(0, ms) + 1);
    this.graceTimer.unref();
  }

  /** Stops the grace timer (the worker is stopping). */
  close(): void {
    clearTimeout(this.graceTimer);
  }
}
