// Exports vary in ways the pipeline must follow from the files, not assume: int64 timesteps (older diffusers and
// some optimum exports), an LCM scheduler config, turbo's trailing spacing with guidance off, and a slow-tokenizer
// layout without tokenizer.json. Each variant runs through the real backend.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createOnnxBackend, type OnnxBackend } from '../../inference/onnx';
import type { GeneratedImage, InferenceJob } from '../../inference/backend';
import { SD15_EULER_SCHEDULER_CONFIG, type StableDiffusionExportOptions } from '../../models/tools/sd-export';
import { tinySdRegistryEntry, writeTinySd } from '../../models/tools/tiny-sd';
import { decode, noHooks, tempDir, tinyBackend, tinyJob, variantRegistry } from './fixtures';

const sha = (image: GeneratedImage): string => createHash('sha256').update(image.png).digest('hex');

async function withVariant<T>(
  exportOptions: StableDiffusionExportOptions,
  entry: Record<string, unknown>,
  run: (backend: OnnxBackend) => Promise<T>,
): Promise<T> {
  const variant = variantRegistry(exportOptions, entry);
  const cache = tempDir('variant-cache');
  const backend = await createOnnxBackend({
    registryPath: variant.registryPath,
    cacheDir: cache.path,
    intraOpNumThreads: 1,
  });
  try {
    return await run(backend);
  } finally {
    await backend.close();
    cache.cleanup();
    variant.cleanup();
  }
}

async function twice(backend: OnnxBackend, job: InferenceJob): Promise<[GeneratedImage, GeneratedImage]> {
  const [a] = await backend.generate(job, noHooks());
  const [b] = await backend.generate(job, noHooks());
  return [a as GeneratedImage, b as GeneratedImage];
}

describe('export variants', { timeout: 120_000 }, () => {
  test('int64 timestep input and an LCM scheduler config: 4-step images, deterministic per seed', async () => {
    await withVariant(
      {
        seed: 77,
        timestepType: 'int64',
        schedulerConfig: {
          ...SD15_EULER_SCHEDULER_CONFIG,
          _class_name: 'LCMScheduler',
          original_inference_steps: 50,
          timestep_scaling: 10,
          set_alpha_to_one: true,
        },
      },
      { scheduler: 'auto' },
      async (backend) => {
        const [a, b] = await twice(backend, tinyJob({ seed: 3, guidanceScale: 1.5 }));
        assert.equal(sha(a), sha(b));
        assert.equal(decode(a).width, 64);
        const [c] = await backend.generate(tinyJob({ seed: 4, guidanceScale: 1.5 }), noHooks());
        assert.notEqual(sha(a), sha(c as GeneratedImage));
      },
    );
  });

  test('turbo style: trailing spacing, one step, guidance 0', async () => {
    await withVariant(
      { seed: 78 },
      { scheduler: 'euler-trailing', defaults: { steps: 1, width: 64, height: 64, guidanceScale: 0 } },
      async (backend) => {
        const steps: number[] = [];
        const [image] = await backend.generate(tinyJob({ steps: 1, guidanceScale: 0 }), {
          onProgress: (s) => steps.push(s),
          signal: new AbortController().signal,
        });
        assert.deepEqual(steps, [1]);
        assert.equal(decode(image as GeneratedImage).height, 64);
      },
    );
  });

  test('a slow-tokenizer export (vocab.json + merges.txt, no tokenizer.json) gives the same image as tiny-sd', async () => {
    const dir = tempDir('slow-export');
    const cache = tempDir('slow-cache');
    const reference = await tinyBackend();
    try {
      const files = writeTinySd(join(dir.path, 'model')).filter((f) => f.path !== 'tokenizer/tokenizer.json');
      writeFileSync(
        join(dir.path, 'registry.json'),
        JSON.stringify({ version: 1, models: [{ ...tinySdRegistryEntry(files), source: { dir: 'model' } }] }),
      );
      // The tokenizer.json written beside it is not listed, so the cache never gets it.
      const backend = await createOnnxBackend({
        registryPath: join(dir.path, 'registry.json'),
        cacheDir: cache.path,
        intraOpNumThreads: 1,
      });
      try {
        const job = tinyJob({ seed: 21, prompt: 'a cozy cabin in the mountains, digital art' });
        const [slow] = await backend.generate(job, noHooks());
        const [fast] = await reference.backend.generate(job, noHooks());
        assert.equal(sha(slow as GeneratedImage), sha(fast as GeneratedImage));
      } finally {
        await backend.close();
      }
    } finally {
      await reference.close();
      dir.cleanup();
      cache.cleanup();
    }
  });
});
