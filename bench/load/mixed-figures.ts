// The mixed profile's figures and checks (issue 11 item 5: relax on idle capacity only), from its request records.
// Pure, so the unit test drives it with made-up records. Field names are the JSON line's (snake_case).
import { FAST_WAIT_RATIO_BOUND } from './mixed-options';
import type { RequestRecord } from './records';
import { outcomeFigures, type OutcomeFigures } from './spike-figures';
import { percentile, ratio } from './stats';

export interface WaitSpread {
  /** Accepted requests whose wait is known: they reached the mark, or ended without it. */
  n: number;
  /** Of those, requests that ended without reaching the mark: their wait to the terminal is counted. */
  never_reached: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

type Mark = 'acceptedAt' | 'safetyCheckAt' | 'generatingAt' | 'progressAt';

/**
 * How long requests waited from `from` (default `accepted`) to `to`, of those that reached `from`. A request that
 * ended without reaching `to` waited all that time and is counted to its terminal (leaving it out would flatter the
 * phase); a lost one has no end and counts as lost instead.
 */
export function waitSpread(records: readonly RequestRecord[], to: Mark, from: Mark = 'acceptedAt'): WaitSpread {
  const waits: number[] = [];
  let neverReached = 0;
  for (const r of records) {
    const start = r[from];
    const reached = r[to];
    const end = reached ?? r.terminalAt;
    if (start === undefined || end === undefined) continue;
    if (reached === undefined) neverReached += 1;
    waits.push(end - start);
  }
  const at = (p: number): number | null => {
    const v = percentile(waits, p);
    return v === null ? null : Math.round(v * 10) / 10;
  };
  return {
    n: waits.length,
    never_reached: neverReached,
    p50_ms: at(50),
    p95_ms: at(95),
    p99_ms: at(99),
    max_ms: at(100),
  };
}

export interface FastPhaseFigures {
  outcomes: OutcomeFigures;
  /** The queue wait of the acceptance: from `accepted` to the first `progress`, the device running the request. */
  wait_to_progress: WaitSpread;
  /** For information: from `accepted` to `generating`, a worker taking the task (before the device may start it). */
  wait_to_generating: WaitSpread;
  /**
   * For information, where the wait to `generating` goes after the workflow's first task started (`safety_check`):
   * that task's end, Temporal's dispatch to the fleet and the GPU worker taking the task.
   */
  safety_check_to_generating: WaitSpread;
  /** For information: from `generating` to the first `progress`, inside the worker: the device's queue and a step. */
  generating_to_progress: WaitSpread;
  /** Fast requests sent per second over the phase. */
  offered_per_s: number;
}

export function fastPhaseFigures(
  records: readonly RequestRecord[],
  waitMs: number,
  durationS: number,
): FastPhaseFigures {
  const sent = records.filter((r) => r.sentAt !== undefined);
  return {
    outcomes: outcomeFigures(records, waitMs),
    wait_to_progress: waitSpread(sent, 'progressAt'),
    wait_to_generating: waitSpread(sent, 'generatingAt'),
    safety_check_to_generating: waitSpread(sent, 'generatingAt', 'safetyCheckAt'),
    generating_to_progress: waitSpread(sent, 'progressAt', 'generatingAt'),
    offered_per_s: Math.round((sent.length / durationS) * 100) / 100,
  };
}

/** The stretch of the flood phase that is measured: from its first fast send to its last fast request's end. */
export interface PhaseWindow {
  readonly startAt: number;
  readonly endAt: number;
}

export function phaseWindow(records: readonly RequestRecord[]): PhaseWindow | undefined {
  const sends = records.flatMap((r) => (r.sentAt === undefined ? [] : [r.sentAt]));
  const ends = records.flatMap((r) => (r.terminalAt === undefined ? [] : [r.terminalAt]));
  if (sends.length === 0 || ends.length === 0) return undefined;
  return { startAt: Math.min(...sends), endAt: Math.max(...ends) };
}

export interface RelaxFigures {
  /** Every relax request of the flood; none is lost (lost counts accepted ones with no terminal at all). */
  outcomes: OutcomeFigures;
  /** Accepted before the flood phase's first fast request was sent. */
  accepted_before_phase: number;
  /** Completed within the flood phase's window: relax progresses on idle capacity. */
  completed_during_phase: number;
  /** Accepted and not ended when the window closed: the flood outlasted the phase. */
  waiting_at_phase_end: number;
  /** Ended with CANCELLED: the rest of the backlog after the drain. */
  cancelled: number;
  /** Cancels sent, and cancels the gateway refused (by code). */
  cancels_sent: number;
  cancels_refused: Record<string, number>;
}

export function relaxFigures(records: readonly RequestRecord[], window: PhaseWindow | undefined): RelaxFigures {
  const inWindow = (t: number | undefined): boolean =>
    window !== undefined && t !== undefined && t >= window.startAt && t <= window.endAt;
  const refused: Record<string, number> = {};
  for (const r of records) {
    if (r.cancelRefusal !== undefined) refused[r.cancelRefusal] = (refused[r.cancelRefusal] ?? 0) + 1;
  }
  const outcomes = outcomeFigures(records, Number.POSITIVE_INFINITY);
  return {
    outcomes,
    accepted_before_phase: records.filter(
      (r) => r.acceptedAt !== undefined && window !== undefined && r.acceptedAt < window.startAt,
    ).length,
    completed_during_phase: records.filter((r) => r.outcome === 'completed' && inWindow(r.terminalAt)).length,
    waiting_at_phase_end: records.filter(
      (r) =>
        window !== undefined &&
        r.acceptedAt !== undefined &&
        r.acceptedAt <= window.endAt &&
        (r.terminalAt === undefined || r.terminalAt > window.endAt),
    ).length,
    cancelled: outcomes.failed_by_code.CANCELLED ?? 0,
    cancels_sent: records.filter((r) => r.cancelSentAt !== undefined).length,
    cancels_refused: refused,
  };
}

export interface MixedChecks {
  /** No fast request of either phase lost (sent without a terminal in time), cut off by its connection, or ended twice. */
  fast_lost_zero: boolean;
  /** Every accepted relax request ended, exactly once (completed, cancelled or failed). */
  relax_ended_once: boolean;
  /** Relax completed during the flood phase: it runs on the idle capacity, it is not starved. */
  relax_progressed: boolean;
  /** Relax was still waiting when the flood phase ended: the fast requests met a full relax lane throughout. */
  flood_lasted: boolean;
  /** Fast p99 wait to the first progress under the flood within FAST_WAIT_RATIO_BOUND x the baseline's. */
  fast_wait_within_bound: boolean;
}

/** The flood phase's fast p99 wait over the baseline's; null when either is unknown or the baseline is 0. */
export function fastWaitRatio(baseline: FastPhaseFigures, flood: FastPhaseFigures): number | null {
  return ratio(flood.wait_to_progress.p99_ms, baseline.wait_to_progress.p99_ms, 3);
}

export function mixedChecks(baseline: FastPhaseFigures, flood: FastPhaseFigures, relax: RelaxFigures): MixedChecks {
  // A dropped connection is no terminal event either: the request's end was not seen.
  const clean = (o: OutcomeFigures): boolean =>
    o.lost === 0 && o.duplicates === 0 && !Object.keys(o.failed_by_code).some((c) => c.startsWith('connection_closed'));
  const waitRatio = fastWaitRatio(baseline, flood);
  return {
    fast_lost_zero: clean(baseline.outcomes) && clean(flood.outcomes),
    relax_ended_once: clean(relax.outcomes),
    relax_progressed: relax.completed_during_phase > 0,
    flood_lasted: relax.waiting_at_phase_end > 0,
    fast_wait_within_bound: waitRatio !== null && waitRatio <= FAST_WAIT_RATIO_BOUND,
  };
}

export function mixedPassed(checks: MixedChecks): boolean {
  return Object.values(checks).every(Boolean);
}

/** Sent requests with no answer yet: neither accepted nor refused. */
export function unanswered(records: readonly RequestRecord[]): number {
  return records.filter((r) => r.sentAt !== undefined && r.acceptedAt === undefined && r.outcome === undefined).length;
}

/** Sent requests without a terminal yet (accepted or not). */
export function stillOpen(records: readonly RequestRecord[]): RequestRecord[] {
  return records.filter((r) => r.sentAt !== undefined && r.outcome === undefined);
}

/** Every sent request has ended or is past `waitMs` after its send (and so lost): the phase is over at `now`. */
export function phaseOver(records: readonly RequestRecord[], waitMs: number, now: number): boolean {
  return records.every((r) => r.sentAt === undefined || r.outcome !== undefined || now - r.sentAt >= waitMs);
}
