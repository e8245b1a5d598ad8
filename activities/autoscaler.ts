// The autoscaler workflow's activities (issue 13), run by the region's control workers when autoscaling is on.
// `sampleFleets` reads what the deployment already measures: the region's queue samples (runtime/capacity-store.ts,
// written by the control worker's sampler every 5 s), the GPU workers' announcements (their duty cycle) and the
// replicas the scale driver runs, for each fleet of the region catalogue. `applyScale` hands the decisions to the
// driver (runtime/scale-driver.ts). Both are idempotent: a retry reads again, or sets the same counts again.
import { Context } from '@temporalio/activity';
import type { AutoscalerActivities } from '../core/activities';
import type { FleetDecision } from '../core/autoscale';
import { fleetSignals } from '../core/autoscale-signals';
import { gpuTaskQueue, relaxTaskQueue } from '../core/gpu';
import { findRegion, regionFleets, type RegionCatalogue } from '../core/regions';
import type { CapacityStore } from '../runtime/capacity-store';
import type { ScaleDriver } from '../runtime/scale-driver';
import type { WorkerControlStore } from '../runtime/worker-control';

export interface AutoscalerActivityDeps {
  readonly capacity: Pick<CapacityStore, 'read'>;
  readonly workers: Pick<WorkerControlStore, 'workers'>;
  readonly driver: ScaleDriver;
  readonly catalogue: () => RegionCatalogue;
  /** Told of each step once the driver took it (the control worker counts them on /metrics). */
  readonly onStep?: (region: string, step: FleetDecision) => void;
}

export function createAutoscalerActivities(deps: AutoscalerActivityDeps): AutoscalerActivities {
  return {
    async sampleFleets({ region }) {
      const spec = findRegion(deps.catalogue(), region);
      if (!spec) return [];
      const [desired, workers] = await Promise.all([deps.driver.replicas(region), deps.workers.workers()]);
      const live = workers.filter((w) => w.region === region && w.state !== 'draining');
      return Promise.all(
        regionFleets(spec).map(async (gpuType) => {
          const mine = live.filter((w) => w.gpuType === gpuType);
          const [queue, relaxLane] = await Promise.all([
            deps.capacity.read(gpuTaskQueue(region, gpuType)),
            deps.capacity.read(relaxTaskQueue(region, gpuType)),
          ]);
          return fleetSignals({
            gpuType,
            // What the driver was last asked for (warming workers included); before any ask, who is running.
            replicas: desired[gpuType] ?? mine.length,
            peakReplicas: spec.fleets[gpuType] ?? 0,
            ...(queue ? { queue } : {}),
            ...(relaxLane ? { relaxLane } : {}),
            dutyCycles: mine.flatMap((w) => (w.dutyCycle !== undefined ? [w.dutyCycle] : [])),
          });
        }),
      );
    },
    async applyScale({ region, decisions }) {
      for (const d of decisions) {
        Context.current().log.info('Autoscaler sets a fleet', { region, ...d });
        await deps.driver.setReplicas(region, d.gpuType, d.to);
        deps.onStep?.(region, d);
      }
    },
  };
}
