// Writes a random-weight export together with a registry that serves it (as `tiny-sd`, the catalogue's name for the
// ONNX test model), so tests and the benchmark run variants through exactly the backend's production path.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeStableDiffusionExport, type StableDiffusionExportOptions } from './sd-export';

/** Writes `<root>/model/**` and `<root>/registry.json`; returns the registry's path and the export's folder. */
export function writeExportWithRegistry(
  root: string,
  exportOptions: StableDiffusionExportOptions,
  entry: Record<string, unknown> = {},
): { registryPath: string; modelDir: string } {
  const modelDir = join(root, 'model');
  const files = writeStableDiffusionExport(modelDir, exportOptions);
  const registryPath = join(root, 'registry.json');
  const model = {
    name: 'tiny-sd',
    family: 'sd15',
    source: { dir: 'model' },
    vramGb: 0.01,
    defaults: { steps: 4, width: 64, height: 64, guidanceScale: 7.5 },
    scheduler: 'auto',
    files,
    ...entry,
  };
  writeFileSync(registryPath, JSON.stringify({ version: 1, models: [model] }, null, 2) + '\n');
  return { registryPath, modelDir };
}
