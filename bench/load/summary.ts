// The human summary: one table per segment with the floor and Atelier side by side and their ratio, then the
// history sizes. Same figures as the JSON line, laid out to be read.
import type { HistorySample } from './history';
import type { PhaseFigures, SegmentReport } from './report';
import { ratio } from './stats';

type Cell = string | number | null | undefined;

const show = (v: Cell): string => (v === null || v === undefined ? '-' : String(v));
const pair = (a: Cell, b: Cell): string => `${show(a)} / ${show(b)}`;

function row(label: string, floor: Cell, atelier: Cell, r?: Cell): string {
  return `${label.padEnd(28)}${show(floor).padEnd(16)}${show(atelier).padEnd(16)}${r === undefined ? '' : show(r)}`;
}

function failures(f: PhaseFigures): string {
  const entries = Object.entries(f.failures);
  return entries.length === 0 ? 'none' : entries.map(([code, n]) => `${code} ${n}`).join(', ');
}

function cpuRows(s: SegmentReport): string[] {
  const names = [...new Set([...Object.keys(s.atelier.cpu_s_per_request), ...Object.keys(s.floor.cpu_s_per_request)])];
  const ordered = [...names.filter((n) => n !== 'total'), 'total'];
  return ordered.map((name) => {
    const floor = s.floor.cpu_s_per_request[name];
    const atelier = s.atelier.cpu_s_per_request[name];
    return row(`  ${name}`, floor, atelier, floor === undefined ? undefined : ratio(atelier, floor, 2));
  });
}

export function formatSegment(name: string, s: SegmentReport): string {
  const { floor: f, atelier: a } = s;
  return [
    `== ${name}: ${s.pattern} ==`,
    row('', 'floor', 'atelier', 'atelier/floor'),
    row('sent', f.sent, a.sent),
    row('completed', f.completed, a.completed),
    row('failed', f.failed, a.failed),
    row('lost', f.lost, a.lost),
    row('duplicates (terminal / seq)', pair(f.duplicates, f.duplicate_seqs), pair(a.duplicates, a.duplicate_seqs)),
    `${'failures by code'.padEnd(28)}floor: ${failures(f)}; atelier: ${failures(a)}`,
    row('accept p50 / p99 ms', pair(f.accept_p50_ms, f.accept_p99_ms), pair(a.accept_p50_ms, a.accept_p99_ms)),
    row('queue wait p50 / p99 ms', '-', pair(a.queue_wait_p50_ms, a.queue_wait_p99_ms)),
    row('e2e p50 ms', f.e2e_p50_ms, a.e2e_p50_ms, s.ratios.e2e_p50_ratio),
    row('e2e p99 ms', f.e2e_p99_ms, a.e2e_p99_ms, s.ratios.e2e_p99_ratio),
    row('e2e max ms', f.e2e_max_ms, a.e2e_max_ms),
    row('throughput /s', f.throughput_per_s, a.throughput_per_s, s.ratios.throughput_ratio),
    row('wall s', f.wall_s, a.wall_s),
    row('heartbeats / request', f.heartbeats_per_request, a.heartbeats_per_request),
    row(
      'workflow tasks / request',
      f.workflow_tasks_per_request,
      a.workflow_tasks_per_request,
      s.ratios.workflow_tasks_ratio,
    ),
    row('activity tasks / request', f.activity_tasks_per_request, a.activity_tasks_per_request),
    ...(a.by_rate ? byRateRows(f, a) : []),
    'CPU s / request',
    ...cpuRows(s),
  ].join('\n');
}

function byRateRows(f: PhaseFigures, a: PhaseFigures): string[] {
  return (a.by_rate ?? []).map((r) => {
    const floor = f.by_rate?.find((x) => x.rate === r.rate);
    return row(
      `  at ${r.rate}/s e2e p50 / p99`,
      pair(floor?.e2e_p50_ms, floor?.e2e_p99_ms),
      pair(r.e2e_p50_ms, r.e2e_p99_ms),
      ratio(r.e2e_p50_ms, floor?.e2e_p50_ms),
    );
  });
}

export function formatSummary(
  segments: Readonly<Record<string, SegmentReport>>,
  history: { readonly atelier: HistorySample; readonly floor: HistorySample },
): string {
  const blocks = Object.entries(segments).map(([name, s]) => formatSegment(name, s));
  blocks.push(
    row(
      'history events / request',
      history.floor.mean,
      history.atelier.mean,
      ratio(history.atelier.mean, history.floor.mean, 2),
    ) + `  (sampled ${history.floor.sampled} / ${history.atelier.sampled})`,
  );
  return `${blocks.join('\n\n')}\n`;
}
