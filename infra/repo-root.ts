// Finds the repository root (the folder of Atelier's package.json) from wherever this code runs: infra/*.ts under
// tsx or dist/infra/*.js once compiled.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'atelier') return dir;
      } catch {
        // Not ours; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`Cannot find the Atelier repository root above ${__dirname}`);
    dir = parent;
  }
}
