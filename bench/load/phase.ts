// One measured phase: a segment's arrivals against one kind of target (the floor or Atelier), with the CPU time
// of every process and the Temporal server's request counters read around it.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { arrivalSchedule, runArrivals, type Arrival } from './arrivals';
import type { Segment } from './options';
import { cpuSnapshot, type CpuSnapshot, type NamedProcess } from './process-cpu';
import { showProgress } from './progress';
import { newRecord, type RequestRecord } from './records';
import { settledCounts, type OperationCounts } from './temporal-metrics';

export type TargetKind = 'floor' | 'atelier';

export interface PhaseContext {
  readonly processes: readonly NamedProcess[];
  readonly metricsUrl: string | null;
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** False for the warm-up: no CPU or counter readings, so no waiting for the server's counters to settle. */
  readonly measure?: boolean;
}

export interface PhaseRun {
  readonly kind: TargetKind;
  readonly segment: Segment;
  readonly records: readonly RequestRecord[];
  readonly cpuBefore: CpuSnapshot;
  readonly cpuAfter: CpuSnapshot;
  readonly countsBefore: OperationCounts | null;
  readonly countsAfter: OperationCounts | null;
  /** From the first send until every request had its terminal event or timed out, seconds. */
  readonly wallS: number;
}

/** Sends a segment's requests through `submit` on schedule and waits for all of them to finish or time out. */
export async function runPhase(
  kind: TargetKind,
  segment: Segment,
  idFor: (index: number) => string,
  submit: (record: RequestRecord) => void,
  ctx: PhaseContext,
): Promise<PhaseRun> {
  const arrivals = arrivalSchedule(segment.pattern);
  const records: RequestRecord[] = [];
  const metricsUrl = ctx.measure === false ? null : ctx.metricsUrl;
  const countsBefore = await settledCounts(metricsUrl, ctx.namespace);
  const cpuBefore = cpuSnapshot(ctx.processes);
  const started = performance.now();
  const stopProgress = showProgress(`${kind} ${segment.name}`, records, arrivals.length);
  try {
    await runArrivals(
      arrivals,
      (index: number, arrival: Arrival) => {
        const record = newRecord(idFor(index), index, arrival.rate);
        records.push(record);
        submit(record);
      },
      ctx.signal,
    );
    await untilFinished(records, ctx.timeoutMs, ctx.signal);
  } finally {
    stopProgress();
  }
  const wallS = (performance.now() - started) / 1000;
  const cpuAfter = cpuSnapshot(ctx.processes);
  const countsAfter = await settledCounts(metricsUrl, ctx.namespace);
  return { kind, segment, records, cpuBefore, cpuAfter, countsBefore, countsAfter, wallS };
}

/** Resolves when every sent request has settled or is past its timeout (or the run is aborted). */
async function untilFinished(records: readonly RequestRecord[], timeoutMs: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    const now = performance.now();
    const open = records.some((r) => r.outcome === undefined && r.sentAt !== undefined && now - r.sentAt < timeoutMs);
    if (!open || signal.aborted) return;
    await sleep(25);
  }
}
