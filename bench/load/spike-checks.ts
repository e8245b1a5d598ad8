// The spike profile's pass/fail checks (issue 11's load proof), from its figures and the probes' samples: nothing
// lost, the queues within the bound the admission caps set, every rejection a documented shedding code carrying
// retryAfterMs, turbo's queue wait within its bound, and every process ready throughout and alive at the end. Pure.
import type { InFlightBound, OutcomeFigures, WaitFigures } from './spike-figures';
import type { ProbeSample } from './spike-probes';

export interface QueueFigures extends InFlightBound {
  /** Largest sum of every queue's backlog in one sample; null when Temporal never answered. */
  backlog_max_total: number | null;
  backlog_max_by_queue: Record<string, number>;
  /** Largest count of the bench's own requests accepted and not ended, in one sample. */
  in_flight_max: number;
  samples: number;
}

export function queueFigures(samples: readonly ProbeSample[], bound: InFlightBound): QueueFigures {
  let maxTotal: number | null = null;
  const byQueue: Record<string, number> = {};
  for (const s of samples) {
    const values = Object.entries(s.backlog);
    if (values.length === 0) continue;
    maxTotal = Math.max(
      maxTotal ?? 0,
      values.reduce((n, [, v]) => n + v, 0),
    );
    for (const [queue, v] of values) byQueue[queue] = Math.max(byQueue[queue] ?? 0, v);
  }
  return {
    ...bound,
    backlog_max_total: maxTotal,
    backlog_max_by_queue: byQueue,
    in_flight_max: samples.reduce((n, s) => Math.max(n, s.inFlight), 0),
    samples: samples.length,
  };
}

export interface HealthFigures {
  /** Readiness probes during the run that answered 200 in time, of those taken, by process. */
  during: Record<string, { probes: number; ready: number }>;
  ready_after: Record<string, boolean>;
  /** Every process of the stack still running under the pid it started the run with. */
  alive_after: Record<string, boolean>;
}

export function healthFigures(
  samples: readonly ProbeSample[],
  readyAfter: Readonly<Record<string, boolean>>,
  aliveAfter: Readonly<Record<string, boolean>>,
): HealthFigures {
  const during: Record<string, { probes: number; ready: number }> = {};
  for (const s of samples) {
    for (const [name, ready] of Object.entries(s.ready)) {
      const entry = (during[name] ??= { probes: 0, ready: 0 });
      entry.probes += 1;
      if (ready) entry.ready += 1;
    }
  }
  return { during, ready_after: { ...readyAfter }, alive_after: { ...aliveAfter } };
}

export interface SpikeChecks {
  /** Some of the excess was refused: a spike the caps let through entirely demonstrates nothing. */
  excess_rejected: boolean;
  lost_zero: boolean;
  /** The summed backlog stayed within the in-flight bound in every sample (and Temporal answered at all). */
  queues_bounded: boolean;
  rejections_documented_with_retry_after: boolean;
  /** null when the mix sent no turbo request. */
  turbo_wait_bounded: boolean | null;
  healthy: boolean;
}

export function spikeChecks(input: {
  readonly outcomes: OutcomeFigures;
  readonly queues: QueueFigures;
  readonly waits: Readonly<Record<string, WaitFigures>>;
  readonly turboWaitBoundMs: number;
  readonly health: HealthFigures;
}): SpikeChecks {
  const { outcomes, queues, waits, health } = input;
  const turbo = waits.turbo;
  const allTrue = (values: readonly boolean[]): boolean => values.every(Boolean);
  return {
    excess_rejected: outcomes.rejected > 0,
    lost_zero: outcomes.lost === 0,
    queues_bounded: queues.backlog_max_total !== null && queues.backlog_max_total <= queues.bound,
    rejections_documented_with_retry_after:
      outcomes.rejections_missing_retry_after === 0 && outcomes.rejections_not_shedding === 0,
    turbo_wait_bounded: turbo === undefined ? null : turbo.p99_ms !== null && turbo.p99_ms <= input.turboWaitBoundMs,
    healthy:
      allTrue(Object.values(health.during).map((d) => d.ready === d.probes)) &&
      allTrue(Object.values(health.ready_after)) &&
      Object.keys(health.ready_after).length > 0 &&
      allTrue(Object.values(health.alive_after)),
  };
}

/** Every check that applies passed. */
export function passed(checks: SpikeChecks): boolean {
  return Object.values(checks).every((v) => v !== false);
}
