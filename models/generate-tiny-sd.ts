// Regenerates the committed `tiny-sd` test model (models/tiny-sd/**) and its entry in models/registry.json.
// Deterministic: seed and opset are pinned in tools/tiny-sd.ts, so re-running it leaves `git status` clean.
//   npx tsx models/generate-tiny-sd.ts            # rewrite models/tiny-sd and the registry entry
//   npx tsx models/generate-tiny-sd.ts --check    # exit 1 if the committed files differ from what it would write
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinySdRegistryEntry, writeTinySd } from './tools/tiny-sd';

const registryPath = join(__dirname, 'registry.json');

interface RegistryFile {
  models: Record<string, unknown>[];
  [key: string]: unknown;
}

function main(): void {
  const check = process.argv.includes('--check');
  const target = check ? mkdtempSync(join(tmpdir(), 'tiny-sd-check-')) : join(__dirname, 'tiny-sd');
  try {
    if (!check) rmSync(target, { recursive: true, force: true });
    const files = writeTinySd(target);
    const registry = JSON.parse(readFileSync(registryPath, 'utf8')) as RegistryFile;
    const entry = tinySdRegistryEntry(files);
    const index = registry.models.findIndex((m) => m.name === 'tiny-sd');
    if (check) {
      if (JSON.stringify(registry.models[index]) !== JSON.stringify(entry)) {
        console.error(
          'models/tiny-sd or its registry entry differs from the generator output; run: npx tsx models/generate-tiny-sd.ts',
        );
        process.exitCode = 1;
      } else console.log('models/tiny-sd and its registry entry match the generator output');
      return;
    }
    if (index >= 0) registry.models[index] = entry;
    else registry.models.push(entry);
    writeFileSync(registryPath, JSON.stringify(registry, null, 2) + '\n');
    const total = files.reduce((n, f) => n + f.size, 0);
    console.log(`wrote ${files.length} files (${total} bytes) to models/tiny-sd and updated models/registry.json`);
  } finally {
    if (check) rmSync(target, { recursive: true, force: true });
  }
}

main();
