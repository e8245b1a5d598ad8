// The mixed profile's JSON line and human summary: both phases' fast figures side by side, the relax flood's fate, the
// ratio the acceptance bounds and each check. Pure.
import {
  fastWaitRatio,
  mixedPassed,
  type FastPhaseFigures,
  type MixedChecks,
  type RelaxFigures,
  type WaitSpread,
} from './mixed-figures';
import { FAST_WAIT_RATIO_BOUND, type MixedOptions } from './mixed-options';
import type { OutcomeFigures } from './spike-figures';

export interface MixedReportInput {
  readonly settings: Record<string, unknown>;
  readonly mixed: MixedOptions;
  readonly fleet: string;
  readonly users: { readonly fast: number; readonly relax: number; readonly calibration: number };
  readonly capacity: {
    readonly per_s: number;
    readonly source: 'measured' | 'flag';
    readonly calibration_sent: number;
  };
  /** Mean rate of the Poisson fast arrivals, requests/s, and how many each phase sends. */
  readonly fast: { readonly rate: number; readonly perPhase: number };
  readonly flood: {
    readonly count: number;
    readonly capped: boolean;
    readonly most: number;
    readonly sentPerS: number | null;
    /** From the flood's first send until every flood request was answered, s. */
    readonly answeredInS: number;
  };
  /** Seconds the relax backlog drained after the flood phase before the rest was cancelled. */
  readonly drainedS: number;
  readonly baseline: FastPhaseFigures;
  readonly floodPhase: FastPhaseFigures;
  readonly relax: RelaxFigures;
  readonly checks: MixedChecks;
}

export type MixedReport = ReturnType<typeof mixedReport>;

export function mixedReport(input: MixedReportInput) {
  const { mixed, capacity, flood } = input;
  return {
    bench: 'load',
    profile: 'mixed',
    ...input.settings,
    fleet: input.fleet,
    fast_users: input.users.fast,
    relax_users: input.users.relax,
    calibration_users: input.users.calibration,
    fast_load: mixed.fastLoad,
    duration_s: mixed.durationS,
    capacity_per_s: capacity.per_s,
    capacity_source: capacity.source,
    calibration_sent: capacity.calibration_sent,
    fast_rate_per_s: input.fast.rate,
    fast_arrivals_per_phase: input.fast.perPhase,
    relax_flood: {
      count: flood.count,
      capped_by_caps: flood.capped,
      most_by_caps: flood.most,
      sent_per_s: flood.sentPerS,
      answered_in_s: flood.answeredInS,
    },
    drained_s: input.drainedS,
    baseline: input.baseline,
    flood: input.floodPhase,
    relax: input.relax,
    fast_wait_p99_ratio: fastWaitRatio(input.baseline, input.floodPhase),
    fast_wait_ratio_bound: FAST_WAIT_RATIO_BOUND,
    checks: input.checks,
    pass: mixedPassed(input.checks),
  };
}

const row = (label: string, ...values: string[]): string =>
  `${label.padEnd(38)}${values.map((v, i) => (i < values.length - 1 ? v.padEnd(Math.max(30, v.length + 2)) : v)).join('')}`;
const dash = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));
const byCode = (counts: Readonly<Record<string, number>>): string =>
  Object.entries(counts)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ') || 'none';
const rejected = (o: OutcomeFigures): string =>
  byCode(Object.fromEntries(Object.entries(o.rejected_by_code).map(([code, f]) => [code, f.count])));
const spread = (w: WaitSpread): string =>
  `${dash(w.p50_ms)} / ${dash(w.p95_ms)} / ${dash(w.p99_ms)} / ${dash(w.max_ms)}`;

function fastLines(r: MixedReport): string[] {
  const b = r.baseline;
  const f = r.flood;
  const both = (label: string, of: (p: FastPhaseFigures) => string): string => row(label, of(b), of(f));
  return [
    row('fast, per phase', 'baseline', 'under the relax flood'),
    both('  sent / accepted / completed', (p) =>
      [p.outcomes.sent, p.outcomes.accepted, p.outcomes.completed].join(' / '),
    ),
    both('  lost / duplicates', (p) => `${p.outcomes.lost} / ${p.outcomes.duplicates}`),
    both('  failed by code', (p) => byCode(p.outcomes.failed_by_code)),
    both('  rejected by code', (p) => rejected(p.outcomes)),
    both('  wait to progress p50/p95/p99/max ms', (p) => spread(p.wait_to_progress)),
    both('  (ended before progress)', (p) => String(p.wait_to_progress.never_reached)),
    both('  accepted to generating (same)', (p) => spread(p.wait_to_generating)),
    both('    of which safety_check to gen.', (p) => spread(p.safety_check_to_generating)),
    both('  generating to progress (same)', (p) => spread(p.generating_to_progress)),
  ];
}

function relaxLines(r: MixedReport): string[] {
  const x = r.relax;
  const o = x.outcomes;
  return [
    row(
      'relax flood',
      `${r.relax_flood.count} from ${r.relax_users} users${r.relax_flood.capped_by_caps ? ' (cut to the caps)' : ''}, ` +
        `sent at ${dash(r.relax_flood.sent_per_s)}/s, answered in ${r.relax_flood.answered_in_s} s`,
    ),
    row('  accepted / rejected by code', `${o.accepted} / ${o.rejected}: ${rejected(o)}`),
    row('  accepted before the flood phase', String(x.accepted_before_phase)),
    row('  completed during the flood phase', String(x.completed_during_phase)),
    row('  still waiting when it ended', String(x.waiting_at_phase_end)),
    row(
      '  in the end: completed / cancelled',
      `${o.completed} / ${x.cancelled} (drained ${r.drained_s} s, then ${x.cancels_sent} cancels sent, ` +
        `refused: ${byCode(x.cancels_refused)})`,
    ),
    row('  failed by code', byCode(o.failed_by_code)),
    row('  lost / duplicates', `${o.lost} / ${o.duplicates}`),
  ];
}

export function formatMixed(r: MixedReport): string {
  const checks = Object.entries(r.checks).map(([name, ok]) => `${name} ${ok ? 'PASS' : 'FAIL'}`);
  return [
    `== mixed: fast at ${r.fast_load}x the ${r.fleet} fleet's capacity for ${r.duration_s} s, ` +
      `without and with a relax flood ==`,
    row(
      'fast capacity',
      `${r.capacity_per_s}/s (${r.capacity_source}${r.capacity_source === 'measured' ? `, burst of ${r.calibration_sent}` : ''})`,
    ),
    row(
      'fast arrivals, each phase',
      `Poisson ${r.fast_rate_per_s}/s: ${r.fast_arrivals_per_phase} from ${r.fast_users} users, the same both times`,
    ),
    ...fastLines(r),
    ...relaxLines(r),
    row(
      'fast p99 wait, flood / baseline',
      `${dash(r.fast_wait_p99_ratio)} (bound ${r.fast_wait_ratio_bound}: ` +
        `${dash(r.flood.wait_to_progress.p99_ms)} / ${dash(r.baseline.wait_to_progress.p99_ms)} ms)`,
    ),
    row('checks', checks.join(', ')),
    row('result', r.pass ? 'PASS' : 'FAIL'),
  ].join('\n');
}
