// Turns the measured phases into the figures the bench prints: one block per segment (floor, Atelier, and their
// ratios), the headline figures, and the single JSON line. Ratios to the floor are the figures to compare across
// runs: absolute times on a small shared machine move with everything else it does, ratios from one run do not.
import type { PhaseRun } from './phase';
import { cpuPerRequest, type CpuSnapshot } from './process-cpu';
import type { HistorySample } from './history';
import { ratio, segmentFigures, type SegmentFigures } from './stats';
import { countsPerRequest, type TrackedOperation } from './temporal-metrics';

export interface PhaseFigures extends SegmentFigures {
  wall_s: number;
  cpu_s_per_request: CpuSnapshot;
  heartbeats_per_request: number | null;
  workflow_tasks_per_request: number | null;
  activity_tasks_per_request: number | null;
}

export interface SegmentReport {
  pattern: string;
  floor: PhaseFigures;
  atelier: PhaseFigures;
  ratios: {
    throughput_ratio: number | null;
    e2e_p50_ratio: number | null;
    e2e_p99_ratio: number | null;
    temporal_cpu_ratio: number | null;
    workflow_tasks_ratio: number | null;
  };
}

/** The floor's other stack processes sit idle; only the server and the bench (its clients and Worker) work. */
const FLOOR_PROCESSES = ['temporal', 'bench'];

export function phaseFigures(run: PhaseRun, timeoutMs: number): PhaseFigures {
  const figures = segmentFigures(run.records, timeoutMs);
  const keep = (snapshot: CpuSnapshot): CpuSnapshot =>
    run.kind === 'floor'
      ? Object.fromEntries(Object.entries(snapshot).filter(([name]) => FLOOR_PROCESSES.includes(name)))
      : snapshot;
  const perOp = countsPerRequest(run.countsBefore, run.countsAfter, figures.completed);
  const op = (name: TrackedOperation): number | null => perOp[name];
  return {
    ...figures,
    wall_s: Math.round(run.wallS * 10) / 10,
    cpu_s_per_request: cpuPerRequest(keep(run.cpuBefore), keep(run.cpuAfter), figures.completed),
    heartbeats_per_request: op('RecordActivityTaskHeartbeat'),
    workflow_tasks_per_request: op('RespondWorkflowTaskCompleted'),
    activity_tasks_per_request: op('RespondActivityTaskCompleted'),
  };
}

export function segmentReport(pattern: string, floor: PhaseFigures, atelier: PhaseFigures): SegmentReport {
  return {
    pattern,
    floor,
    atelier,
    ratios: {
      throughput_ratio: ratio(atelier.throughput_per_s, floor.throughput_per_s),
      e2e_p50_ratio: ratio(atelier.e2e_p50_ms, floor.e2e_p50_ms),
      e2e_p99_ratio: ratio(atelier.e2e_p99_ms, floor.e2e_p99_ms),
      temporal_cpu_ratio: ratio(atelier.cpu_s_per_request.temporal, floor.cpu_s_per_request.temporal),
      workflow_tasks_ratio: ratio(atelier.workflow_tasks_per_request, floor.workflow_tasks_per_request),
    },
  };
}

export interface ReportInput {
  readonly settings: Record<string, unknown>;
  readonly segments: Readonly<Record<string, SegmentReport>>;
  readonly history: { readonly atelier: HistorySample; readonly floor: HistorySample };
  readonly strayFrames: unknown;
}

/**
 * The JSON line. Latency headlines come from the segment at a steady rate (the first paced or step one), throughput
 * and per-request costs from the burst when there is one (under saturation, idle time does not dilute them); a
 * single-segment run uses its one segment for everything. lost and duplicates are summed over every segment.
 */
export function buildReport(input: ReportInput): Record<string, unknown> {
  const all = Object.values(input.segments);
  const atRate = all.find((s) => !s.pattern.startsWith('burst')) ?? all[0];
  const saturated = all.find((s) => s.pattern.startsWith('burst')) ?? atRate;
  const sum = (pick: (s: SegmentReport) => number): number => all.reduce((n, s) => n + pick(s), 0);
  return {
    bench: 'load',
    ...input.settings,
    throughput_ratio: saturated?.ratios.throughput_ratio ?? null,
    e2e_p50_ratio_at_rate: atRate?.ratios.e2e_p50_ratio ?? null,
    e2e_p99_ratio_at_rate: atRate?.ratios.e2e_p99_ratio ?? null,
    throughput_per_s: saturated?.atelier.throughput_per_s ?? null,
    floor_throughput_per_s: saturated?.floor.throughput_per_s ?? null,
    accept_p50_ms: atRate?.atelier.accept_p50_ms ?? null,
    accept_p99_ms: atRate?.atelier.accept_p99_ms ?? null,
    queue_wait_p50_ms: atRate?.atelier.queue_wait_p50_ms ?? null,
    queue_wait_p99_ms: atRate?.atelier.queue_wait_p99_ms ?? null,
    e2e_p50_ms: atRate?.atelier.e2e_p50_ms ?? null,
    e2e_p99_ms: atRate?.atelier.e2e_p99_ms ?? null,
    floor_e2e_p50_ms: atRate?.floor.e2e_p50_ms ?? null,
    floor_e2e_p99_ms: atRate?.floor.e2e_p99_ms ?? null,
    lost: sum((s) => s.atelier.lost),
    floor_lost: sum((s) => s.floor.lost),
    duplicates: sum((s) => s.atelier.duplicates),
    duplicate_seqs: sum((s) => s.atelier.duplicate_seqs),
    failed: sum((s) => s.atelier.failed),
    history_events_per_request: input.history.atelier.mean,
    floor_history_events_per_request: input.history.floor.mean,
    heartbeats_per_request: saturated?.atelier.heartbeats_per_request ?? null,
    workflow_tasks_per_request: saturated?.atelier.workflow_tasks_per_request ?? null,
    activity_tasks_per_request: saturated?.atelier.activity_tasks_per_request ?? null,
    floor_workflow_tasks_per_request: saturated?.floor.workflow_tasks_per_request ?? null,
    floor_activity_tasks_per_request: saturated?.floor.activity_tasks_per_request ?? null,
    cpu_s_per_request: saturated?.atelier.cpu_s_per_request ?? {},
    floor_cpu_s_per_request: saturated?.floor.cpu_s_per_request ?? {},
    temporal_cpu_ratio: saturated?.ratios.temporal_cpu_ratio ?? null,
    stray_frames: input.strayFrames,
    segments: input.segments,
  };
}
