// One simulated GPU fleet of the autoscaler day: its workers (warming, idle, busy, draining), its queues (turbo and
// fast by priority, relax in a lane served only by workers with nothing else to do), admission, and the running
// integrals the report prices (GPU-time billed, ready, busy by tier). A worker serves one request at a time and is
// never interrupted: a scale-down takes warming and idle workers at once and lets busy ones finish first.
//
// Admission (seed 003's backpressure, kept simple): a new request of a tier is refused while the work queued ahead
// of it on the fleet (its own tier and those served before it: turbo; turbo + fast; everything for relax), in
// GPU-seconds, over the fleet's ready workers is above its tier's wait bound: by default the gateway's own admission
// bounds (core/capacity.ts TIER_ADMISSION_WAIT_BOUND_MS: turbo 1 min, fast 30 s, relax 15 min). Each tier is judged on its own;
// the gateway's "never turbo before fast" order is left out (on the turbo-only H100 fleet it would never shed turbo).
import { TIER_ADMISSION_WAIT_BOUND_MS } from '../../core/capacity';
import type { FleetSignals } from '../../core/autoscale';
import type { GpuType } from '../../core/gpu';
import { TIERS } from '../../core/tiers';
import { Fifo, Series } from './series';

export const TIER_COUNT = 3;
/** Admission's wait bound per tier index, ms: the gateway's. */
export const DEFAULT_ADMISSION_BOUNDS_MS: readonly number[] = TIERS.map((t) => TIER_ADMISSION_WAIT_BOUND_MS[t]);
/** The span of the utilization signal (issue 13: busy fraction over the last minute). */
export const UTILIZATION_WINDOW_MS = 60_000;

export interface Job {
  readonly arrivalMs: number;
  readonly serviceMs: number;
  /** 0 turbo, 1 fast, 2 relax. */
  readonly tier: number;
  /** Arrived outside the spike and its aftermath: its wait also counts in the calm figures. */
  readonly calm: boolean;
}

export interface Worker {
  state: 'warming' | 'idle' | 'busy' | 'gone';
  draining: boolean;
  busyUntil: number;
  job: Job | undefined;
}

export interface FleetEvent {
  readonly kind: 'done' | 'warm';
  readonly fleet: Fleet;
  readonly worker: Worker;
}
export type Scheduler = (atMs: number, event: FleetEvent) => void;

/** A change of the fleet's size, as the strategy asked for it. */
export interface ScaleStep {
  readonly atMs: number;
  readonly from: number;
  readonly to: number;
}

export class Fleet {
  private readonly queues = [new Fifo<Job>(), new Fifo<Job>(), new Fifo<Job>()];
  private readonly queuedWorkMs = [0, 0, 0];
  private readonly queuedArrivalSum = [0, 0, 0];
  private workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private warming = 0;
  private busy = 0;
  private draining = 0;
  private lastMs: number;
  private utilSamples: { atMs: number; busyMs: number; readyMs: number }[] = [];

  /** GPU-ms billed (every worker from its scale-up to its leaving), ready and busy, within the window. */
  billedMs = 0;
  readyMs = 0;
  busyMs = 0;
  readonly busyMsByTier = [0, 0, 0];
  readonly accepted = [0, 0, 0];
  readonly rejected = [0, 0, 0];
  readonly served = [0, 0, 0];
  readonly servedWorkMs = [0, 0, 0];
  readonly waits = [new Series(), new Series(), new Series()];
  readonly calmWaits = [new Series(), new Series(), new Series()];
  readonly steps: ScaleStep[] = [];
  maxReplicas: number;
  minReplicas: number;

  constructor(
    readonly gpuType: GpuType,
    readonly coldStartMs: number,
    initialSize: number,
    startMs: number,
    private readonly endMs: number,
    private readonly schedule: Scheduler,
    private readonly admissionBoundsMs: readonly number[] = DEFAULT_ADMISSION_BOUNDS_MS,
  ) {
    this.lastMs = startMs;
    for (let i = 0; i < initialSize; i++) {
      const w: Worker = { state: 'idle', draining: false, busyUntil: 0, job: undefined };
      this.workers.push(w);
      this.idle.push(w);
    }
    this.maxReplicas = this.minReplicas = initialSize;
  }

  /** Workers up: warming ones included, draining ones not (what the autoscaler counts). */
  get replicas(): number {
    return this.warming + this.idle.length + this.busy - this.draining;
  }
  get readyWorkers(): number {
    return this.idle.length + this.busy - this.draining;
  }
  get queueDepth(): number {
    return this.queues[0]!.length + this.queues[1]!.length;
  }
  get relaxDepth(): number {
    return this.queues[2]!.length;
  }
  /** Requests accepted and not yet started. */
  get waiting(): number {
    return this.queueDepth + this.relaxDepth;
  }
  /** Requests in service. */
  get inService(): number {
    return this.busy;
  }

  /** Accrues the integrals up to `now` (never past the window's end): call before any count changes. */
  private advance(now: number): void {
    const t = Math.min(now, this.endMs);
    const dt = t - this.lastMs;
    if (dt <= 0) return;
    const ready = this.idle.length + this.busy;
    this.billedMs += (ready + this.warming) * dt;
    this.readyMs += ready * dt;
    this.busyMs += this.busy * dt;
    this.lastMs = t;
  }

  private refuses(tier: number): boolean {
    let ahead = this.queuedWorkMs[0]!;
    if (tier >= 1) ahead += this.queuedWorkMs[1]!;
    if (tier >= 2) ahead += this.queuedWorkMs[2]!;
    if (ahead === 0) return false;
    const ready = this.readyWorkers;
    return ready === 0 || ahead / ready > this.admissionBoundsMs[tier]!;
  }

  /** A new request: refused, started on an idle worker, or queued. Returns whether it was accepted. */
  arrive(job: Job, now: number): boolean {
    this.advance(now);
    if (this.refuses(job.tier)) {
      this.rejected[job.tier]!++;
      return false;
    }
    this.accepted[job.tier]!++;
    // An idle worker means every queue is empty (a worker only goes idle after finding nothing to take).
    const worker = this.idle.pop();
    if (worker) this.start(worker, job, now);
    else {
      this.queues[job.tier]!.push(job);
      this.queuedWorkMs[job.tier]! += job.serviceMs;
      this.queuedArrivalSum[job.tier]! += job.arrivalMs;
    }
    return true;
  }

  private start(worker: Worker, job: Job, now: number): void {
    worker.state = 'busy';
    worker.job = job;
    worker.busyUntil = now + job.serviceMs;
    this.busy++;
    this.waits[job.tier]!.push(now - job.arrivalMs);
    if (job.calm) this.calmWaits[job.tier]!.push(now - job.arrivalMs);
    this.schedule(worker.busyUntil, { kind: 'done', fleet: this, worker });
  }

  /** The next job by priority: turbo, then fast, then relax (relax only reaches a worker with nothing else). */
  private dequeue(): Job | undefined {
    for (let tier = 0; tier < TIER_COUNT; tier++) {
      const job = this.queues[tier]!.shift();
      if (job) {
        this.queuedWorkMs[tier]! -= job.serviceMs;
        this.queuedArrivalSum[tier]! -= job.arrivalMs;
        return job;
      }
    }
    return undefined;
  }

  private takeWork(worker: Worker, now: number): void {
    const job = this.dequeue();
    if (job) this.start(worker, job, now);
    else {
      worker.state = 'idle';
      this.idle.push(worker);
    }
  }

  done(worker: Worker, now: number): void {
    const job = worker.job;
    if (worker.state !== 'busy' || !job) throw new Error('a completion for a worker that is not busy');
    this.advance(now);
    this.busy--;
    const began = now - job.serviceMs;
    this.busyMsByTier[job.tier]! += Math.min(now, this.endMs) - Math.min(began, this.endMs);
    this.served[job.tier]!++;
    this.servedWorkMs[job.tier]! += job.serviceMs;
    worker.job = undefined;
    if (worker.draining) {
      worker.state = 'gone';
      this.draining--;
      return;
    }
    this.takeWork(worker, now);
  }

  warm(worker: Worker, now: number): void {
    if (worker.state !== 'warming') return; // removed while warming
    this.advance(now);
    this.warming--;
    this.takeWork(worker, now);
  }

  /** Sets the fleet's size: new workers warm up for coldStartMs; removal takes warming, idle, then busy (drained). */
  scaleTo(target: number, now: number): void {
    const from = this.replicas;
    if (target === from) return;
    this.advance(now);
    this.steps.push({ atMs: now, from, to: target });
    this.maxReplicas = Math.max(this.maxReplicas, target);
    this.minReplicas = Math.min(this.minReplicas, target);
    for (let i = from; i < target; i++) {
      const w: Worker = { state: 'warming', draining: false, busyUntil: 0, job: undefined };
      this.workers.push(w);
      this.warming++;
      this.schedule(now + this.coldStartMs, { kind: 'warm', fleet: this, worker: w });
    }
    if (target < from) this.remove(from - target);
  }

  private remove(count: number): void {
    this.workers = this.workers.filter((w) => w.state !== 'gone');
    let left = count;
    for (let i = this.workers.length - 1; i >= 0 && left > 0; i--) {
      const w = this.workers[i]!;
      if (w.state !== 'warming') continue;
      w.state = 'gone';
      this.warming--;
      left--;
    }
    for (; left > 0 && this.idle.length > 0; left--) this.idle.pop()!.state = 'gone';
    const busy = this.workers
      .filter((w) => w.state === 'busy' && !w.draining)
      .sort((a, b) => a.busyUntil - b.busyUntil);
    for (const w of busy.slice(0, left)) {
      w.draining = true;
      this.draining++;
    }
  }

  /** The duty cycle over the last UTILIZATION_WINDOW_MS (sampled at each call); undefined before any ready time. */
  /** Busy fraction of the ready workers, and busy workers on average, over the last UTILIZATION_WINDOW_MS. */
  utilization(now: number): { fraction: number; busyGpus: number } | undefined {
    this.advance(now);
    const samples = this.utilSamples;
    samples.push({ atMs: now, busyMs: this.busyMs, readyMs: this.readyMs });
    while (samples.length > 1 && now - samples[1]!.atMs >= UTILIZATION_WINDOW_MS) samples.shift();
    const first = samples[0]!;
    const ready = this.readyMs - first.readyMs;
    const span = now - first.atMs;
    // No window yet (the very first look): what the workers are doing now, as a just-started worker reports.
    if (span === 0) {
      const up = this.idle.length + this.busy;
      return up > 0 ? { fraction: this.busy / up, busyGpus: this.busy } : undefined;
    }
    if (!(ready > 0)) return undefined;
    const busy = this.busyMs - first.busyMs;
    return { fraction: busy / ready, busyGpus: busy / span };
  }

  /**
   * The fleet as the autoscaler sees it, as a live fleet reports it: queues, waits, duty cycle, and with `forecast`
   * its busy GPUs, from which the policy forecasts (core/autoscale-forecast.ts). Without, the policy falls back on
   * its fixed schedule.
   */
  signals(now: number, peakReplicas: number, forecast: boolean): FleetSignals {
    const meanAgeS = (tiers: number[]): number => {
      const n = tiers.reduce((s, t) => s + this.queues[t]!.length, 0);
      const sum = tiers.reduce((s, t) => s + this.queuedArrivalSum[t]!, 0);
      return n === 0 ? 0 : (n * now - sum) / n / 1000;
    };
    const utilization = this.utilization(now);
    return {
      gpuType: this.gpuType,
      replicas: this.replicas,
      peakReplicas,
      queueDepth: this.queueDepth,
      relaxDepth: this.relaxDepth,
      avgWaitS: meanAgeS([0, 1]),
      relaxAvgWaitS: meanAgeS([2]),
      ...(utilization !== undefined ? { utilization: utilization.fraction } : {}),
      ...(utilization !== undefined && forecast ? { busyGpus: utilization.busyGpus } : {}),
    };
  }
}
