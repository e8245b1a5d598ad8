// The spike profile's JSON line and its human summary: the same figures, the summary laid out to be read. Absolute
// rates on a small shared machine are noise; the ratios to the measured capacity and the counts are the figures.
import { passed, type HealthFigures, type QueueFigures, type SpikeChecks } from './spike-checks';
import type { OutcomeFigures, WaitFigures } from './spike-figures';
import type { SpikeOptions } from './spike-options';
import { ratio } from './stats';

export interface SpikeReportInput {
  readonly settings: Record<string, unknown>;
  /** Users (API keys) of the spike itself. */
  readonly users: number;
  readonly spike: SpikeOptions;
  readonly capacity: {
    readonly per_s: number;
    readonly source: 'measured' | 'flag';
    readonly calibration_sent: number;
  };
  readonly offered: { readonly rate: number; readonly count: number };
  readonly waitS: number;
  /** Requests actually sent per second (the generator may fall behind the offered rate on a busy machine). */
  readonly sentPerS: number | null;
  /** Completions per second over the spike, first send to last completion. */
  readonly completedPerS: number | null;
  readonly outcomes: OutcomeFigures;
  readonly waits: Readonly<Record<string, WaitFigures>>;
  readonly queues: QueueFigures;
  readonly health: HealthFigures;
  readonly checks: SpikeChecks;
}

export type SpikeReport = ReturnType<typeof spikeReport>;

export function spikeReport(input: SpikeReportInput) {
  const { outcomes, capacity } = input;
  return {
    bench: 'load',
    profile: 'spike',
    ...input.settings,
    users: input.users,
    multiplier: input.spike.multiplier,
    duration_s: input.spike.durationS,
    capacity_per_s: capacity.per_s,
    capacity_source: capacity.source,
    calibration_sent: capacity.calibration_sent,
    offered_per_s: input.offered.rate,
    offered_vs_capacity: ratio(input.offered.rate, capacity.per_s, 2),
    sent_per_s: input.sentPerS,
    completed_per_s: input.completedPerS,
    completed_vs_capacity: ratio(input.completedPerS, capacity.per_s, 2),
    wait_s: input.waitS,
    ...outcomes,
    accepted_ratio: ratio(outcomes.accepted, outcomes.sent, 3),
    queue_wait_by_tier: input.waits,
    turbo_wait_bound_ms: input.spike.turboWaitBoundMs,
    queue: input.queues,
    health: input.health,
    checks: input.checks,
    pass: passed(input.checks),
  };
}

const row = (label: string, value: string): string => `${label.padEnd(34)}${value}`;
const listOr = (items: readonly string[], none: string): string => (items.length === 0 ? none : items.join(', '));
const dash = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));

function rejectionsLine(r: SpikeReport): string {
  return listOr(
    Object.entries(r.rejected_by_code).map(
      ([code, f]) =>
        `${code} ${f.count} (retryAfterMs on ${f.with_retry_after}: ${dash(f.retry_after_min_ms)} / ` +
        `${dash(f.retry_after_p50_ms)} / ${dash(f.retry_after_max_ms)} ms min / p50 / max)`,
    ),
    'none',
  );
}

function notSheddingLines(r: SpikeReport): string[] {
  return Object.entries(r.not_shedding_messages).flatMap(([code, messages]) =>
    Object.entries(messages).map(([message, n]) => row(`  ${code}`, `${n}: ${message}`)),
  );
}

function waitLines(r: SpikeReport): string[] {
  return Object.entries(r.queue_wait_by_tier).map(([tier, w]) =>
    row(
      `  ${tier}`,
      `${dash(w.p50_ms)} / ${dash(w.p99_ms)} / ${dash(w.max_ms)}  (${w.accepted} accepted, ` +
        `${w.never_started} ended unstarted)`,
    ),
  );
}

function healthLines(h: HealthFigures): string[] {
  const during = Object.entries(h.during).map(([name, d]) => `${name} ${d.ready}/${d.probes}`);
  const notReady = Object.entries(h.ready_after).flatMap(([name, ok]) => (ok ? [] : [name]));
  const dead = Object.entries(h.alive_after).flatMap(([name, ok]) => (ok ? [] : [name]));
  return [
    row('ready probes during (ready/taken)', listOr(during, 'none taken')),
    row('after: not ready / not alive', `${listOr(notReady, 'none')} / ${listOr(dead, 'none')}`),
  ];
}

export function formatSpike(r: SpikeReport): string {
  const q = r.queue;
  const checks = Object.entries(r.checks).map(([name, ok]) => `${name} ${ok === null ? 'n/a' : ok ? 'PASS' : 'FAIL'}`);
  return [
    `== spike: ${r.multiplier}x capacity for ${r.duration_s} s from ${r.users} users ==`,
    row('capacity', `${r.capacity_per_s}/s (${r.capacity_source})`),
    row(
      'offered (sent)',
      `${r.offered_per_s}/s (${dash(r.offered_vs_capacity)}x capacity), ${r.sent} sent at ${dash(r.sent_per_s)}/s`,
    ),
    row('completed during the spike', `${dash(r.completed_per_s)}/s (${dash(r.completed_vs_capacity)}x capacity)`),
    row(
      'accepted / completed / failed',
      `${r.accepted} (${dash(r.accepted_ratio)} of sent) / ${r.completed} / ${r.failed}`,
    ),
    row(
      'failed by code',
      listOr(
        Object.entries(r.failed_by_code).map(([c, n]) => `${c} ${n}`),
        'none',
      ),
    ),
    row('rejected', `${r.rejected}: ${rejectionsLine(r)}`),
    row(
      'rejections without retryAfterMs',
      `${r.rejections_missing_retry_after} (not shedding: ${r.rejections_not_shedding})`,
    ),
    ...notSheddingLines(r),
    row('lost (unanswered)', `${r.lost} (${r.unanswered}), waited ${r.wait_s} s per request`),
    row('duplicates (terminal / seq)', `${r.duplicates} / ${r.duplicate_seqs}`),
    row('queue wait p50 / p99 / max ms', `turbo bound ${r.turbo_wait_bound_ms} ms on p99`),
    ...waitLines(r),
    row('backlog max, summed over queues', `${dash(q.backlog_max_total)} (bound ${q.bound}: ${q.source})`),
    row(
      '  by queue',
      listOr(
        Object.entries(q.backlog_max_by_queue).map(([n, v]) => `${n} ${v}`),
        'no answer',
      ),
    ),
    row('in flight max (bench side)', `${q.in_flight_max} (${q.samples} samples)`),
    ...healthLines(r.health),
    row('checks', checks.join(', ')),
    row('result', r.pass ? 'PASS' : 'FAIL'),
  ].join('\n');
}
