// The regions of a local stack (issue 12): `ATELIER_REGIONS=us-west,us-east npm start` runs, per region, a control
// worker, the GPU fleets the region catalogue gives it (of ATELIER_GPU_TYPES) and a gateway on a port of its own, all
// on one Temporal server and one Redis. The first region is home: its processes keep the single-region names
// (`gateway`, `control-worker`, `gpu-worker[a10g]`) and its gateway the configured port; another region's processes
// are named `<name>@<region>` and its gateway listens on the next port. Each region has its own object store.
import path from 'node:path';
import type { GpuType } from '../core/gpu';
import { regionFleets, requireRegion, type RegionCatalogue } from '../core/regions';
import { loadRegionCatalogue } from '../runtime/region-catalogue';
import { StackStartError } from './stack-context';
import type { StackOptions } from './stack-options';

export interface RegionPlan {
  readonly region: string;
  readonly home: boolean;
  /** The GPU fleets the region runs here. */
  readonly gpuTypes: readonly GpuType[];
  /** 0: a free port, chosen at launch. */
  readonly gatewayPort: number;
}

/** A child's name in its region: as it is for the home region, `<name>@<region>` for another. */
export function regionChildName(plan: Pick<RegionPlan, 'region' | 'home'>, name: string): string {
  return plan.home ? name : `${name}@${plan.region}`;
}

/** The worker children of a region: its control worker and a GPU worker per fleet. */
export function regionWorkerNames(plan: RegionPlan): string[] {
  return [
    regionChildName(plan, 'control-worker'),
    ...plan.gpuTypes.map((gpuType) => regionChildName(plan, `gpu-worker[${gpuType}]`)),
  ];
}

/** What each region runs; throws a StackStartError for a region the catalogue lacks or that would run no fleet. */
export function planRegions(
  options: Pick<StackOptions, 'region' | 'regions' | 'gpuTypes' | 'gatewayPort'>,
  catalogue: () => RegionCatalogue = loadRegionCatalogue,
): RegionPlan[] {
  if (options.regions.length === 0) {
    return [{ region: options.region, home: true, gpuTypes: options.gpuTypes, gatewayPort: options.gatewayPort }];
  }
  const regions = catalogue();
  return options.regions.map((region, i) => {
    let spec;
    try {
      spec = requireRegion(regions, region);
    } catch (err) {
      throw new StackStartError(`ATELIER_REGIONS: ${(err as Error).message}`);
    }
    const gpuTypes = regionFleets(spec).filter((gpuType) => options.gpuTypes.includes(gpuType));
    if (gpuTypes.length === 0) {
      throw new StackStartError(
        `ATELIER_REGIONS: ${region} runs ${regionFleets(spec).join(', ')}, none of ATELIER_GPU_TYPES (${options.gpuTypes.join(', ')})`,
      );
    }
    return { region, home: i === 0, gpuTypes, gatewayPort: options.gatewayPort === 0 ? 0 : options.gatewayPort + i };
  });
}

/**
 * What a region's children get beyond the stack's shared environment. With several regions each keeps its images in a
 * store of its own, `<storage dir>/<region>`, and names the others' as its peers (runtime/region-stores.ts).
 */
export function regionEnv(plan: RegionPlan, plans: readonly RegionPlan[], storageDir: string): Record<string, string> {
  const storage: Record<string, string> =
    plans.length > 1
      ? {
          ATELIER_STORAGE_DIR: path.join(storageDir, plan.region),
          ATELIER_PEER_STORAGE: plans
            .filter((p) => p.region !== plan.region)
            .map((p) => `${p.region}=${path.join(storageDir, p.region)}`)
            .join(','),
        }
      : {};
  return {
    ATELIER_REGION: plan.region,
    ATELIER_GPU_TYPES: plan.gpuTypes.join(','),
    ATELIER_GATEWAY_PORT: String(plan.gatewayPort),
    ...storage,
  };
}
