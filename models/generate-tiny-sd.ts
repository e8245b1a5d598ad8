// Regenerates the committed `tiny-sd` test model (models/tiny-sd/**) and its entry in models/registry.json.
// Deterministic: the seed and opset are pinned below, so re-running it must leave `git status` clean.
//   npx tsx models/generate-tiny-sd.ts            # rewrite models/tiny-sd and the registry entry
//   npx tsx models/generate-tiny-sd.ts --check    # exit 1 if the committed files differ from what it would write
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeStableDiffusionExport, type ExportedFile } from './tools/sd-export';

export const TINY_SD_SEED = 20240601;
export const TINY_SD_OPSET = 17;

const modelsDir = resolve(__dirname);
const registryPath = join(modelsDir, 'registry.json');

interface RegistryFile {
  models: { name: string; files: ExportedFile[] }[];
  [key: string]: unknown;
}

function tinySdEntry(files: ExportedFile[]): Record<string, unknown> {
  return {
    name: 'tiny-sd',
    family: 'sd15',
    description: 'Tiny random-weight Stable Diffusion export (diffusers ONNX layout) for tests and CPU demos; written by models/generate-tiny-sd.ts.',
    source: { dir: 'tiny-sd' },
    vramGb: 0.01,
    defaults: { steps: 4, width: 64, height: 64, guidanceScale: 7.5 },
    scheduler: 'euler',
    files,
  };
}

function main(): void {
  const check = process.argv.includes('--check');
  const target = check ? mkdtempSync(join(tmpdir(), 'tiny-sd-check-')) : join(modelsDir, 'tiny-sd');
  try {
    if (!check) rmSync(target, { recursive: true, force: true });
    const files = writeStableDiffusionExport(target, { seed: TINY_SD_SEED, opset: TINY_SD_OPSET });
    const registry = JSON.parse(readFileSync(registryPath, 'utf8')) as RegistryFile;
    const entry = tinySdEntry(files);
    if (check) {
      const committed = registry.models.find((m) => m.name === 'tiny-sd');
      if (JSON.stringify(committed?.files) !== JSON.stringify(files)) {
        console.error('models/tiny-sd differs from the generator output; run: npx tsx models/generate-tiny-sd.ts');
        process.exitCode = 1;
        return;
      }
      console.log('models/tiny-sd matches the generator output');
      return;
    }
    const index = registry.models.findIndex((m) => m.name === 'tiny-sd');
    if (index >= 0) registry.models[index] = entry as unknown as RegistryFile['models'][number];
    else registry.models.push(entry as unknown as RegistryFile['models'][number]);
    writeFileSync(registryPath, JSON.stringify(registry, null, 2) + '\n');
    const total = files.reduce((n, f) => n + f.size, 0);
    console.log(`wrote ${files.length} files (${total} bytes) to models/tiny-sd and updated models/registry.json`);
  } finally {
    if (check) rmSync(target, { recursive: true, force: true });
  }
}

main();
