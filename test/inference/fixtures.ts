// Shared set-up for the ONNX backend tests: backends on the committed tiny-sd model with a private model cache, and
// jobs with every field filled.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PNG } from 'pngjs';
import { within } from '../helpers/deadline';
import type { GeneratedImage, InferenceJob } from '../../inference/backend';
import { createOnnxBackend, type OnnxBackend, type OnnxBackendOptions } from '../../inference/onnx';
import { writeExportWithRegistry } from '../../models/tools/export-registry';
import type { StableDiffusionExportOptions } from '../../models/tools/sd-export';

export const REPO_ROOT = resolve(__dirname, '../..');
export const REGISTRY_PATH = join(REPO_ROOT, 'models', 'registry.json');
export const TINY_SD_SOURCE = join(REPO_ROOT, 'models', 'tiny-sd');

/** A temporary folder removed by `cleanup`. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `atelier-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A backend on the real registry with its own empty model cache; `close` also removes the cache. */
export async function tinyBackend(
  options: Partial<OnnxBackendOptions> = {},
): Promise<{ backend: OnnxBackend; cacheDir: string; close: () => Promise<void> }> {
  const cache = tempDir('model-cache');
  const backend = await createOnnxBackend({
    registryPath: REGISTRY_PATH,
    cacheDir: cache.path,
    preload: [],
    intraOpNumThreads: 1,
    ...options,
  });
  return {
    backend,
    cacheDir: cache.path,
    close: async () => {
      await within('the ONNX backend (inference and PNG threads)', 30_000, backend.close());
      cache.cleanup();
    },
  };
}

let requestCounter = 0;

export function tinyJob(overrides: Partial<InferenceJob> = {}): InferenceJob {
  return {
    requestId: `test-${++requestCounter}`,
    model: 'tiny-sd',
    prompt: 'a photo of an astronaut riding a horse',
    negativePrompt: '',
    width: 64,
    height: 64,
    steps: 4,
    seed: 1234,
    numImages: 1,
    guidanceScale: 7.5,
    loras: [],
    controlnets: [],
    ...overrides,
  };
}

export function noHooks(signal: AbortSignal = new AbortController().signal): {
  onProgress: () => void;
  signal: AbortSignal;
} {
  return { onProgress: () => undefined, signal };
}

export function decode(image: GeneratedImage | Buffer): PNG {
  return PNG.sync.read(Buffer.isBuffer(image) ? image : image.png);
}

/** Largest per-channel difference between two same-size PNGs, in 8-bit levels (1 = 1/255). */
export function maxPixelDifference(a: GeneratedImage, b: GeneratedImage): number {
  const pa = decode(a);
  const pb = decode(b);
  if (pa.width !== pb.width || pa.height !== pb.height) return Infinity;
  let max = 0;
  for (let i = 0; i < pa.data.length; i++)
    max = Math.max(max, Math.abs((pa.data[i] as number) - (pb.data[i] as number)));
  return max;
}

/**
 * Writes a variant of the tiny export (e.g. int64 timesteps, another scheduler) and a registry serving it as
 * `tiny-sd`, so the backend runs it through the same code path as the committed model.
 */
export function variantRegistry(
  exportOptions: StableDiffusionExportOptions,
  entry: Record<string, unknown> = {},
): { registryPath: string; cleanup: () => void } {
  const dir = tempDir('variant');
  return { registryPath: writeExportWithRegistry(dir.path, exportOptions, entry).registryPath, cleanup: dir.cleanup };
}

/** Copies the committed export into a model cache, as a worker that fetched it earlier would have it. */
export function seedCache(cacheDir: string): string {
  const target = join(cacheDir, 'tiny-sd');
  cpSync(TINY_SD_SOURCE, target, { recursive: true });
  return target;
}
