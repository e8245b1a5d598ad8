// Loads the region catalogue (core/regions.ts): ATELIER_REGION_CATALOGUE, or the repository's config/regions.json
// (seed 001's three regions), found from the source tree (tsx) or from the build (dist/runtime). Read once at start:
// a process serves the catalogue it started with.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseRegionCatalogue, RegionCatalogueError, type RegionCatalogue } from '../core/regions';

/** config/regions.json beside the source tree or the build. */
export function defaultRegionCataloguePath(): string {
  const candidates = [
    path.resolve(__dirname, '..', 'config', 'regions.json'),
    path.resolve(__dirname, '..', '..', 'config', 'regions.json'),
  ];
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

/** Reads and validates the catalogue at `file` (default: ATELIER_REGION_CATALOGUE, else config/regions.json). */
export function loadRegionCatalogue(
  file = process.env.ATELIER_REGION_CATALOGUE || defaultRegionCataloguePath(),
): RegionCatalogue {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new RegionCatalogueError(`Cannot read the region catalogue ${file}: ${why}`);
  }
  return parseRegionCatalogue(raw, file);
}
