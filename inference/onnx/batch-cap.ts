// The ONNX backend's out-of-memory batch cap (seed 001 oom_error policy): a pass that runs out of memory lowers its
// model's batch cap to half its size, and the cap doubles back after enough successful passes until the configured
// maximum applies again. Kept apart from the backend so the policy can be read and tested on its own.

/** A model's lowered cap, and the successful passes since it was last lowered or doubled. */
interface LoweredCap {
  cap: number;
  passesSince: number;
}

/**
 * Batch caps per model after out-of-memory failures. A model with no lowered cap is not limited here (the
 * configured maximum and its registry entry still apply, which the caller combines).
 */
export class OutOfMemoryBatchCap {
  private readonly lowered = new Map<string, LoweredCap>();

  /**
   * @param maxBatchSize the configured most images per pass: once a doubled cap reaches it, the model is no longer
   *   capped here.
   * @param recoveryPasses successful passes of a model before its cap doubles.
   */
  constructor(
    private readonly maxBatchSize: number,
    private readonly recoveryPasses: number,
  ) {}

  /** The model's cap from out-of-memory failures; Infinity when it has none. */
  capFor(model: string): number {
    return this.lowered.get(model)?.cap ?? Infinity;
  }

  /**
   * A pass of `members` images of `model` ran out of memory. Returns half its size (at least one); the model's cap
   * becomes the lower of that and any cap already in force, since a pass started before an earlier halving can fail
   * after it. Recovery starts over.
   */
  recordOutOfMemory(model: string, members: number): number {
    const halved = Math.max(1, Math.floor(members / 2));
    this.lowered.set(model, { cap: Math.min(halved, this.capFor(model)), passesSince: 0 });
    return halved;
  }

  /** A pass of `model` succeeded: every `recoveryPasses` of them since the cap last changed double it, up to no cap. */
  recordSuccess(model: string): void {
    const lowered = this.lowered.get(model);
    if (!lowered || ++lowered.passesSince < this.recoveryPasses) return;
    lowered.cap *= 2;
    lowered.passesSince = 0;
    if (lowered.cap >= this.maxBatchSize) this.lowered.delete(model);
  }
}
