// The committed `tiny-sd` test model: its pinned generator settings and registry entry. models/generate-tiny-sd.ts
// writes it; test/inference checks that the committed files are exactly what these settings produce.
import { writeStableDiffusionExport, type ExportedFile } from './sd-export';

/** Seed of every weight of tiny-sd. Changing it changes every committed file and hash. */
export const TINY_SD_SEED = 20240601;
/** ONNX opset of the three tiny-sd models (onnxruntime 1.16+ runs it; diffusers exports use 14-17). */
export const TINY_SD_OPSET = 17;

export function writeTinySd(dir: string): ExportedFile[] {
  return writeStableDiffusionExport(dir, { seed: TINY_SD_SEED, opset: TINY_SD_OPSET });
}

/** The registry entry for tiny-sd; defaults match core/models.ts (64x64, 4 steps). */
export function tinySdRegistryEntry(files: ExportedFile[]): Record<string, unknown> {
  return {
    name: 'tiny-sd',
    family: 'sd15',
    description:
      'Tiny random-weight Stable Diffusion export (diffusers ONNX layout) for tests and CPU demos; written by models/generate-tiny-sd.ts.',
    source: { dir: 'tiny-sd' },
    vramGb: 0.01,
    defaults: { steps: 4, width: 64, height: 64, guidanceScale: 7.5 },
    scheduler: 'euler',
    files,
  };
}
