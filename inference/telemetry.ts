// What an inference backend tells its host about the work it does, as plain numbers and callbacks: each pass it runs
// (the images in it), how much of the last minute it spent computing, and where it knows them, device memory and
// model-file corruptions. The engine knows nothing of Prometheus or Temporal: the GPU worker turns these into metrics
// (workers/gpu-metrics.ts), and benches or tests read them directly.

/** One pass through a model: an ONNX batch, or one job of the simulated GPU. */
export interface PassRecord {
  readonly model: string;
  readonly images: number;
}

export interface DeviceMemory {
  readonly usedBytes: number;
  readonly totalBytes: number;
}

export interface BackendTelemetry {
  /**
   * Fraction of the last window (see BusyMeter) during which the backend computed, averaged over its lanes (ONNX:
   * inference threads, each a pass at a time; simulated: its one GPU). 1 = every lane busy the whole window.
   */
  busyFraction(now?: number): number;
  /** Calls `listener` as each pass starts; returns the function that stops it. */
  onPass(listener: (pass: PassRecord) => void): () => void;
  /** Device memory as the backend itself models it (the simulated GPU). Absent where it has no figure of its own. */
  deviceMemory?(): DeviceMemory;
  /** Model files that failed verification so far, by model. */
  modelCorruptions?(): ReadonlyMap<string, number>;
}

/** Default window of busyFraction: one minute, the usual scrape-to-alert horizon. */
export const BUSY_WINDOW_MS = 60_000;

interface Interval {
  readonly start: number;
  end: number;
}

/**
 * Busy time of a backend's lanes over a sliding window. Each `begin()` opens an interval and its returned function
 * closes it; intervals that ended before the window are dropped, so memory stays bounded by the passes of one window.
 */
export class BusyMeter {
  private readonly done: Interval[] = [];
  private readonly open = new Set<Interval>();
  private readonly createdAt: number;

  constructor(
    private readonly lanes: number,
    private readonly windowMs: number = BUSY_WINDOW_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(lanes >= 1)) throw new TypeError(`lanes must be at least 1, got ${lanes}`);
    this.createdAt = now();
  }

  /** A lane starts computing; call the returned function (once or more) when it stops. */
  begin(): () => void {
    const interval: Interval = { start: this.now(), end: Infinity };
    this.open.add(interval);
    return () => {
      if (!this.open.delete(interval)) return;
      interval.end = this.now();
      this.done.push(interval);
      this.prune(interval.end);
    };
  }

  /**
   * Busy lane-time over the last window divided by lanes x window. A backend younger than the window is measured over
   * its life so far, so a fresh worker does not read as idle.
   */
  fraction(now: number = this.now()): number {
    const span = Math.min(this.windowMs, now - this.createdAt);
    if (span <= 0) return 0;
    const from = now - span;
    this.prune(now);
    let busy = 0;
    for (const i of this.done) busy += Math.max(0, Math.min(i.end, now) - Math.max(i.start, from));
    for (const i of this.open) busy += Math.max(0, now - Math.max(i.start, from));
    return Math.min(1, busy / (this.lanes * span));
  }

  private prune(now: number): void {
    const from = now - this.windowMs;
    let drop = 0;
    // Intervals close in order of their end, so the ones wholly before the window are at the front.
    while (drop < this.done.length && (this.done[drop] as Interval).end <= from) drop++;
    if (drop > 0) this.done.splice(0, drop);
  }
}

/** The passes and busy time of one backend, in the shape BackendTelemetry reports them. */
export class WorkRecorder {
  private readonly listeners = new Set<(pass: PassRecord) => void>();
  readonly busy: BusyMeter;

  constructor(lanes: number, windowMs?: number, now?: () => number) {
    this.busy = new BusyMeter(lanes, windowMs, now);
  }

  /** A pass starts computing: listeners hear of it, and its lane counts as busy until the returned function runs. */
  passStarted(pass: PassRecord): () => void {
    for (const listener of this.listeners) {
      try {
        listener(pass);
      } catch {
        // Metrics never fail a pass.
      }
    }
    return this.busy.begin();
  }

  onPass(listener: (pass: PassRecord) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
}
