// Regions as configuration (issue 12): the region catalogue (config/regions.json by default, from seed 001's
// multi-region architecture) and the pure rules over it: which regions can serve a model, and where a request goes
// when its home region cannot. Pure: the gateway and the launcher load the file (runtime/region-catalogue.ts) and
// call these with what they know of each region's health.
import { z } from 'zod';
import { assertRegion, GPU_TYPES, type GpuType } from './gpu';
import { isModelName, MODEL_NAMES, type ModelName } from './models';

export const REGION_ROLES = ['primary', 'secondary'] as const;
export type RegionRole = (typeof REGION_ROLES)[number];

const regionName = z.string().refine(
  (name) => {
    try {
      assertRegion(name);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'a region name is lower-case letters, digits and dashes (2-31 characters)' },
);

const regionSchema = z.strictObject({
  name: regionName,
  role: z.enum(REGION_ROLES),
  /** Models the region's GPU fleets serve. */
  models: z
    .array(z.string().refine(isModelName, { message: `a model is one of ${MODEL_NAMES.join(', ')}` }))
    .min(1)
    .transform((models) => models as ModelName[]),
  /** GPUs per fleet (for capacity planning and the autoscaler); a fleet with none is not in the region. */
  fleets: z.partialRecord(z.enum(GPU_TYPES), z.number().int().min(1)),
  /** Other regions by latency, nearest first: where its requests fail over to, in that order. */
  neighbours: z.array(regionName),
});

export const regionCatalogueSchema = z
  .object({ regions: z.array(regionSchema).min(1) })
  .superRefine((catalogue, ctx) => {
    const names = catalogue.regions.map((r) => r.name);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate) ctx.addIssue({ code: 'custom', message: `region ${duplicate} is listed twice` });
    const primaries = catalogue.regions.filter((r) => r.role === 'primary').length;
    if (primaries !== 1) ctx.addIssue({ code: 'custom', message: `one primary region, not ${primaries}` });
    for (const region of catalogue.regions) {
      for (const n of region.neighbours) {
        if (n === region.name) ctx.addIssue({ code: 'custom', message: `${n} lists itself as a neighbour` });
        else if (!names.includes(n))
          ctx.addIssue({ code: 'custom', message: `${region.name}: unknown neighbour ${n}` });
      }
      if (Object.keys(region.fleets).length === 0)
        ctx.addIssue({ code: 'custom', message: `${region.name} has no GPU fleet` });
    }
  });

export type RegionSpec = z.infer<typeof regionSchema>;
export type RegionCatalogue = z.infer<typeof regionCatalogueSchema>;

/** Thrown for a catalogue that is not valid; the message lists every problem. */
export class RegionCatalogueError extends TypeError {
  override readonly name = 'RegionCatalogueError';
}

/** Validates a parsed catalogue file; `source` names it in the error. */
export function parseRegionCatalogue(raw: unknown, source = 'the region catalogue'): RegionCatalogue {
  const result = regionCatalogueSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  throw new RegionCatalogueError(`${source} is not valid:\n  - ${problems.join('\n  - ')}`);
}

export function findRegion(catalogue: RegionCatalogue, name: string): RegionSpec | undefined {
  return catalogue.regions.find((r) => r.name === name);
}

/** The region of `name`, or a RegionCatalogueError naming the regions the catalogue has. */
export function requireRegion(catalogue: RegionCatalogue, name: string): RegionSpec {
  const region = findRegion(catalogue, name);
  if (!region) {
    const known = catalogue.regions.map((r) => r.name).join(', ');
    throw new RegionCatalogueError(`Region ${JSON.stringify(name)} is not in the region catalogue (${known})`);
  }
  return region;
}

/** The GPU fleets a region runs. */
export function regionFleets(region: RegionSpec): GpuType[] {
  return GPU_TYPES.filter((gpuType) => (region.fleets[gpuType] ?? 0) > 0);
}

/** Where a request of `home` may run, in order: home, its neighbours nearest first, then any other region. */
export function failoverOrder(catalogue: RegionCatalogue, home: string): RegionSpec[] {
  const start = requireRegion(catalogue, home);
  const order = [start, ...start.neighbours.map((n) => requireRegion(catalogue, n))];
  for (const r of catalogue.regions) if (!order.includes(r)) order.push(r);
  return order;
}

/** Where a new request goes: a region, and whether that is not its home (the client is told: degraded). */
export type RegionChoice =
  | { readonly ok: true; readonly region: string; readonly degraded: boolean; readonly reason?: RegionDetour }
  | { readonly ok: false; readonly reason: 'model-not-served' | 'no-healthy-region' };

/** Why a request left its home region. */
export type RegionDetour = 'home-unhealthy' | 'model-not-served';

/**
 * Routes a new request for `model` from its `home` region: home when it serves the model and is healthy, else the
 * nearest healthy region that serves it. No healthy region that serves it: `no-healthy-region`; no region of the
 * catalogue serves it at all: `model-not-served`.
 */
export function chooseRegion(
  catalogue: RegionCatalogue,
  home: string,
  model: ModelName,
  healthy: (region: string) => boolean,
): RegionChoice {
  const serving = failoverOrder(catalogue, home).filter((r) => r.models.includes(model));
  if (serving.length === 0) return { ok: false, reason: 'model-not-served' };
  const target = serving.find((r) => healthy(r.name));
  if (!target) return { ok: false, reason: 'no-healthy-region' };
  if (target.name === home) return { ok: true, region: home, degraded: false };
  const homeServes = serving[0]?.name === home;
  return { ok: true, region: target.name, degraded: true, reason: homeServes ? 'home-unhealthy' : 'model-not-served' };
}
