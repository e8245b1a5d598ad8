// A GPU run's deadline on the worker: the request's `deadlineAt` (InferenceInput) as an abort signal, so the backend
// stops at the deadline by this worker's clock, within one step, instead of when the workflow's cancel arrives in a
// heartbeat's answer (about a second later). The workflow cancels the run at the deadline too; this is the exact one.
// Clocks: `deadlineAt` was set by the gateway's clock, and servers keep theirs in step (NTP) to well under a step.

export class RunDeadline {
  /** Aborted at the deadline or by the activity's cancellation, whichever comes first. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    cancellation: AbortSignal,
    private readonly deadlineAt: number | undefined,
    private readonly now: () => number = Date.now,
  ) {
    if (deadlineAt === undefined) {
      this.signal = cancellation;
      return;
    }
    this.signal = AbortSignal.any([cancellation, this.controller.signal]);
    this.timer = setTimeout(() => this.controller.abort(), Math.max(0, deadlineAt - now()));
  }

  /** Whether the request's deadline has passed: a run it stopped, or one that should not start. */
  get passed(): boolean {
    return this.controller.signal.aborted || (this.deadlineAt !== undefined && this.now() >= this.deadlineAt);
  }

  /** The deadline, for messages. */
  describe(): string {
    return `The request's deadline (${new Date(this.deadlineAt ?? 0).toISOString()}) passed`;
  }

  /** Stops the timer once the run has ended. */
  clear(): void {
    clearTimeout(this.timer);
  }
}
