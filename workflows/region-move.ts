// Failover of a waiting request to another region (issue 12): the `moveRegion` signal. The failover coordinator of a
// region that died (workers/region-failover.ts, in a healthy region's control worker) sends it to each of the region's
// requests still waiting for a GPU there, naming the region to run in instead (the nearest healthy one that serves the
// model). The request's GPU step cancels its unstarted attempt and schedules the next on the same fleet type in that
// region; an attempt already running is left alone, and only its retry (after a heartbeat timeout, say) goes there.
// Workflow code (deterministic): the signal's payload is in the history, so a replay moves the request the same way.
import { defineSignal } from '@temporalio/workflow';

export interface RegionMove {
  /** The region the request is to leave: a move from another region than its current one is stale and ignored. */
  readonly from: string;
  readonly to: string;
  /** Cancel an attempt waiting to start (true for requests the coordinator saw scheduled, not started). */
  readonly cancelWaiting: boolean;
}

export const moveRegionSignal = defineSignal<[RegionMove]>('moveRegion');
