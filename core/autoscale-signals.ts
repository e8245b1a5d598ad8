// What the autoscaler sees of a fleet (core/autoscale.ts FleetSignals), built from what the deployment already
// measures: the region's queue samples (DescribeTaskQueue backlogs by priority and dispatch rates, shared through
// Redis for admission: runtime/capacity-store.ts), the workers' own announcements (their GPU duty cycle) and the
// replicas the scale driver runs. Pure, so the autoscaler's activity and its tests share it.
//
// Wait: seed 001's "average wait" is taken as the wait a request arriving now can expect, the backlog ahead of it
// over the rate the fleet drains it (core/capacity.ts expectedWaitMs). It moves as soon as the queue does, where an
// average over requests that already started lags by the very wait it measures.
import { expectedWaitMs, type QueueSnapshot } from './capacity';
import type { FleetSignals } from './autoscale';
import type { GpuType } from './gpu';

/** The wait reported for a queue with work and no worker taking any, seconds. */
export const UNDRAINED_WAIT_S = 86_400;

export interface FleetObservation {
  readonly gpuType: GpuType;
  /** Workers the driver runs for the fleet (warming included, draining not). */
  readonly replicas: number;
  /** The fleet's GPUs at 100% (the region catalogue). */
  readonly peakReplicas: number;
  /** Samples of the fleet's queue and of its relax lane; absent: not sampled lately (counted as empty). */
  readonly queue?: QueueSnapshot;
  readonly relaxLane?: QueueSnapshot;
  /** GPU duty cycle of each of the fleet's workers that announced one, 0..1. */
  readonly dutyCycles: readonly number[];
}

function backlog(snapshot: QueueSnapshot | undefined): number {
  return Object.values(snapshot?.backlogByPriority ?? {}).reduce((sum, n) => sum + n, 0);
}

function waitSeconds(snapshot: QueueSnapshot | undefined, tier: 'fast' | 'relax'): number | undefined {
  if (!snapshot) return undefined;
  const ms = expectedWaitMs(snapshot, tier);
  // Work waiting and nothing draining it: a day, past any threshold (and finite: signals travel as JSON).
  return ms === undefined ? UNDRAINED_WAIT_S : ms / 1000;
}

export function fleetSignals(o: FleetObservation): FleetSignals {
  const fast = waitSeconds(o.queue, 'fast');
  const relax = waitSeconds(o.relaxLane, 'relax');
  const busyGpus = o.dutyCycles.reduce((sum, d) => sum + Math.min(1, Math.max(0, d)), 0);
  const utilization = o.dutyCycles.length > 0 ? busyGpus / o.dutyCycles.length : undefined;
  return {
    gpuType: o.gpuType,
    replicas: o.replicas,
    peakReplicas: o.peakReplicas,
    queueDepth: backlog(o.queue),
    relaxDepth: backlog(o.relaxLane),
    ...(fast !== undefined ? { avgWaitS: fast } : {}),
    ...(relax !== undefined ? { relaxAvgWaitS: relax } : {}),
    ...(utilization !== undefined ? { utilization, busyGpus } : {}),
  };
}
