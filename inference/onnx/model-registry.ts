// The model registry (models/registry.json) and the worker's model cache. Every file a model needs is listed with
// its sha256 and size; the cache holds verified copies fetched from the model's source (a local directory or a base
// URL). A cached file that fails verification fails the request with `ModelCorrupted`, so the workflow retries on
// another worker, and is replaced from the source in the background, so a retry here succeeds too.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { Logger } from '../../runtime/logger';
import { InferenceError } from '../backend';

const relativePath = z
  .string()
  .min(1)
  .refine((p) => !isAbsolute(p) && !p.split(/[\\/]/).includes('..'), 'a relative path inside the model folder');

const registryFileSchema = z.strictObject({
  path: relativePath,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'lower-case hex sha256'),
  /** Bytes. */
  size: z.number().int().nonnegative(),
});

const registryModelSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  family: z.enum(['sd15', 'sd21', 'sdxl', 'sd3', 'flux']),
  description: z.string().optional(),
  /** `dir` is relative to the registry file; `url` is a base URL that each file path is appended to. */
  source: z.union([z.strictObject({ dir: z.string().min(1) }), z.strictObject({ url: z.url() })]),
  /** Device memory the model needs at its default resolution and batch 1, GiB. */
  vramGb: z.number().positive(),
  defaults: z.strictObject({
    steps: z.number().int().min(1),
    width: z.number().int().min(8),
    height: z.number().int().min(8),
    guidanceScale: z.number().min(0),
  }),
  scheduler: z.enum(['auto', 'euler', 'euler-trailing', 'lcm']).default('auto'),
  vaeScalingFactor: z.number().positive().optional(),
  /** Caps this model's batches below the backend's maxBatchSize (large models on small GPUs). */
  maxBatchSize: z.number().int().min(1).optional(),
  files: z.array(registryFileSchema).min(1),
});

const registrySchema = z.strictObject({
  $comment: z.string().optional(),
  version: z.literal(1),
  models: z.array(registryModelSchema),
});

export type RegistryModel = z.infer<typeof registryModelSchema>;
export type RegistryFileEntry = z.infer<typeof registryFileSchema>;

const REQUIRED_FILES = [
  'model_index.json',
  'scheduler/scheduler_config.json',
  'text_encoder/model.onnx',
  'unet/model.onnx',
  'vae_decoder/model.onnx',
];

export class ModelRegistry {
  private constructor(
    private readonly models: ReadonlyMap<string, RegistryModel>,
    /** Folder that `source.dir` paths are relative to. */
    readonly baseDir: string,
  ) {}

  /** Reads and validates a registry file; throws a TypeError naming the problem. */
  static async load(path: string): Promise<ModelRegistry> {
    const raw = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return ModelRegistry.fromJson(raw, dirname(resolve(path)), path);
  }

  static fromJson(raw: unknown, baseDir: string, label = 'registry'): ModelRegistry {
    const parsed = registrySchema.safeParse(raw);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      throw new TypeError(`${label}: invalid model registry: ${problems}`);
    }
    const models = new Map<string, RegistryModel>();
    for (const model of parsed.data.models) {
      if (models.has(model.name)) throw new TypeError(`${label}: model ${model.name} is listed twice`);
      const paths = new Set(model.files.map((f) => f.path));
      const missing = REQUIRED_FILES.filter((f) => !paths.has(f));
      if (missing.length > 0) throw new TypeError(`${label}: model ${model.name} lacks ${missing.join(', ')}`);
      models.set(model.name, model);
    }
    return new ModelRegistry(models, baseDir);
  }

  get(name: string): RegistryModel | undefined {
    return this.models.get(name);
  }

  names(): string[] {
    return [...this.models.keys()];
  }

  describeSource(model: RegistryModel): string {
    return 'dir' in model.source ? resolve(this.baseDir, model.source.dir) : model.source.url;
  }
}

export interface FileDigest {
  readonly sha256: string;
  readonly size: number;
}

/** Streams a file through sha256 (64 KiB chunks, so hashing a multi-GB UNet never blocks the event loop for long). */
export async function digestFile(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 16 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

export interface ModelStoreCounters {
  /** Cached files hashed and found good. */
  filesVerified: number;
  /** Files copied or downloaded from a model's source into the cache. */
  filesFetched: number;
  /** Cached files that failed verification. */
  corruptionsDetected: number;
  /** Background reloads of a model from its source after a corruption, and how many of them failed. */
  reloads: number;
  reloadFailures: number;
}

export class ModelStore {
  readonly counters: ModelStoreCounters = {
    filesVerified: 0,
    filesFetched: 0,
    corruptionsDetected: 0,
    reloads: 0,
    reloadFailures: 0,
  };
  /** `corruptionsDetected` by model, for the worker's atelier_model_corruptions_total. */
  readonly corruptionsByModel = new Map<string, number>();
  private readonly reloadsInFlight = new Map<string, Promise<void>>();

  constructor(
    readonly registry: ModelRegistry,
    /** Where verified copies live: `<cacheDir>/<model>/<file path>`. */
    readonly cacheDir: string,
    private readonly logger: Logger,
  ) {}

  modelDir(name: string): string {
    return join(resolve(this.cacheDir), name);
  }

  /**
   * Returns the folder of a verified copy of `name`, fetching missing files from the source. Throws
   * InferenceError `ModelNotFound` (not in the registry, or the source lacks a file) or `ModelCorrupted` (a cached
   * file or the source's copy fails its checksum; a reload from the source has been started).
   */
  async ensureVerified(name: string): Promise<string> {
    const model = this.registry.get(name);
    if (!model) throw new InferenceError('ModelNotFound', `Model ${name} is not in the registry`);
    const reload = this.reloadsInFlight.get(name);
    if (reload) await reload;
    const dir = this.modelDir(name);
    for (const file of model.files) {
      const target = join(dir, file.path);
      if (!existsSync(target)) {
        await this.fetch(model, file, target);
        continue;
      }
      const digest = await digestFile(target);
      if (digest.sha256 === file.sha256 && digest.size === file.size) {
        this.counters.filesVerified++;
        continue;
      }
      this.counters.corruptionsDetected++;
      this.corruptionsByModel.set(name, (this.corruptionsByModel.get(name) ?? 0) + 1);
      this.startReload(model);
      throw new InferenceError(
        'ModelCorrupted',
        `Model ${name}: cached ${file.path} fails verification (sha256 ${digest.sha256.slice(0, 12)}…, ${digest.size} bytes; ` +
          `expected ${file.sha256.slice(0, 12)}…, ${file.size} bytes); reloading it from ${this.registry.describeSource(model)}`,
      );
    }
    return dir;
  }

  /** Resolves when no reload of `name` is in flight (tests, readiness). */
  async settled(name: string): Promise<void> {
    await this.reloadsInFlight.get(name);
  }

  private startReload(model: RegistryModel): void {
    if (this.reloadsInFlight.has(model.name)) return;
    this.counters.reloads++;
    const reload = this.reload(model)
      .then(() => this.logger.warn({ model: model.name }, 'model reloaded from its source after a checksum failure'))
      .catch((err: unknown) => {
        this.counters.reloadFailures++;
        this.logger.error({ err, model: model.name }, 'reloading a corrupted model from its source failed');
      })
      .finally(() => this.reloadsInFlight.delete(model.name));
    this.reloadsInFlight.set(model.name, reload);
  }

  /** Re-fetches every cached file of `model` that is missing or fails verification. */
  private async reload(model: RegistryModel): Promise<void> {
    const dir = this.modelDir(model.name);
    for (const file of model.files) {
      const target = join(dir, file.path);
      if (existsSync(target)) {
        const digest = await digestFile(target);
        if (digest.sha256 === file.sha256 && digest.size === file.size) continue;
      }
      await this.fetch(model, file, target);
    }
  }

  /** Copies or downloads one file into a temporary name, verifies it while streaming, then renames it into place. */
  private async fetch(model: RegistryModel, file: RegistryFileEntry, target: string): Promise<void> {
    await mkdir(dirname(target), { recursive: true });
    const partial = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
    const hash = createHash('sha256');
    let size = 0;
    const digesting = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(await this.openSource(model, file), digesting, createWriteStream(partial));
      const sha256 = hash.digest('hex');
      if (sha256 !== file.sha256 || size !== file.size) {
        throw new InferenceError(
          'ModelCorrupted',
          `Model ${model.name}: the source's ${file.path} fails verification too (sha256 ${sha256.slice(0, 12)}…, ${size} bytes); fix ${this.registry.describeSource(model)}`,
        );
      }
      await rename(partial, target);
      this.counters.filesFetched++;
    } catch (err) {
      await unlink(partial).catch(() => undefined);
      throw err;
    }
  }

  private async openSource(model: RegistryModel, file: RegistryFileEntry): Promise<Readable> {
    if ('dir' in model.source) {
      const path = join(resolve(this.registry.baseDir, model.source.dir), file.path);
      try {
        await stat(path);
      } catch (err) {
        throw new InferenceError('ModelNotFound', `Model ${model.name}: source file ${path} is missing`, {
          cause: err,
        });
      }
      return createReadStream(path);
    }
    const url = `${model.source.url.replace(/\/+$/, '')}/${file.path}`;
    let response: Response;
    try {
      response = await fetch(url);
    } catch (err) {
      // Unreachable source: retryable, the next attempt may reach it.
      throw new InferenceError('InferenceFailed', `Model ${model.name}: could not download ${url}`, { cause: err });
    }
    if (response.status === 404) throw new InferenceError('ModelNotFound', `Model ${model.name}: ${url} answered 404`);
    if (!response.ok || !response.body)
      throw new InferenceError('InferenceFailed', `Model ${model.name}: ${url} answered ${response.status}`);
    return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }
}
