// Flags of `npm run bench:inference` (bench/inference.ts), and the registry it writes to bench an export of your own
// (--export, e.g. the SD-Turbo-architecture export of bench/gpu/run.sh) through the backend's production path.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface BenchArgs {
  readonly quick: boolean;
  /** Which built-in models to run; `none` with --export runs only the export. */
  readonly only: 'all' | 'tiny' | 'unet' | 'none';
  /** A diffusers ONNX export to bench as well (its own size, steps and guidance flags below). */
  readonly exportDir: string | undefined;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
  /** Batch sizes of the sweep: maxBatchSize b at concurrency 2b, so a full batch waits while one runs. */
  readonly batchSizes: readonly number[];
  /** Requests per sweep point, as a multiple of its batch size. */
  readonly passesPerPoint: number;
}

const HELP = `npm run bench:inference -- [flags]
  --quick                 fewer requests (a smoke run)
  --only tiny|unet|none   run only that built-in model (none: only --export)
  --export DIR            also bench this diffusers ONNX export (float32 inputs and outputs)
  --size N | --width N --height N   export image size (default 512)
  --steps N               export steps (default 1)
  --guidance X            export guidance scale (default 0: no classifier-free guidance)
  --batch-sizes 1,4,8,16  export sweep: one JSON line per batch size
  --passes N              full passes per sweep point (default 6)`;

function value(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new TypeError(`${flag} needs a value\n${HELP}`);
  return v;
}

function positiveInt(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`${flag} ${raw}: a positive integer`);
  return n;
}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  if (argv.includes('--help')) {
    console.log(HELP);
    process.exit(0);
  }
  const only = value(argv, '--only') ?? 'all';
  if (!['all', 'tiny', 'unet', 'none'].includes(only)) throw new TypeError(`--only ${only}\n${HELP}`);
  const size = positiveInt(value(argv, '--size'), '--size', 512);
  const guidance = Number(value(argv, '--guidance') ?? 0);
  if (!Number.isFinite(guidance) || guidance < 0) throw new TypeError(`--guidance: a number >= 0`);
  const batchSizes = (value(argv, '--batch-sizes') ?? '1,4,8,16')
    .split(',')
    .map((b) => positiveInt(b.trim(), '--batch-sizes', 1));
  return {
    quick: argv.includes('--quick'),
    only: only as BenchArgs['only'],
    exportDir: value(argv, '--export'),
    width: positiveInt(value(argv, '--width'), '--width', size),
    height: positiveInt(value(argv, '--height'), '--height', size),
    steps: positiveInt(value(argv, '--steps'), '--steps', 1),
    guidanceScale: guidance,
    batchSizes,
    passesPerPoint: positiveInt(value(argv, '--passes'), '--passes', 6),
  };
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * Writes `<registryDir>/registry.json` serving `exportDir` (every file hashed, external weights included) under the
 * name the bench's jobs ask for. The backend copies the files into its cache and verifies them, as in production.
 */
export async function registryForExport(
  exportDir: string,
  registryDir: string,
  model: string,
  args: BenchArgs,
): Promise<string> {
  const files = [];
  for (const path of filesUnder(exportDir).sort()) {
    files.push({ path: relative(exportDir, path), sha256: await sha256(path), size: statSync(path).size });
  }
  const entry = {
    name: model,
    family: 'sd21',
    source: { dir: exportDir },
    vramGb: 8,
    defaults: { steps: args.steps, width: args.width, height: args.height, guidanceScale: args.guidanceScale },
    scheduler: 'auto',
    files,
  };
  const registryPath = join(registryDir, 'registry.json');
  writeFileSync(registryPath, JSON.stringify({ version: 1, models: [entry] }, null, 2) + '\n');
  return registryPath;
}
