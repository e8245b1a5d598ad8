// Model loading for the ONNX backend: a model is ready once its files are verified (fetched, or reloaded from the
// source after a corruption, by the ModelStore) and its sessions exist on every inference thread. Each model loads
// once however many requests ask at the same time; a failed load is forgotten so that the next request retries it.
import type { Logger } from '../../runtime/logger';
import { InferenceError, type LoadedModelStatus } from '../backend';
import type { ModelRegistry, ModelStore, ModelStoreCounters } from './model-registry';
import { InferenceThreadError, type InferenceThreadPool } from './thread-pool';
import type { ModelLoadSpec } from './thread-protocol';

/** A loaded model in status(): the contract's fields plus how the memory figure is made up. */
export interface OnnxLoadedModelStatus extends LoadedModelStatus {
  /** Bytes of the model files, once per inference thread holding sessions. */
  readonly weightBytes: number;
  /**
   * Growth of process RSS from right after the sessions were created to the most seen after a pass of this model,
   * summed over threads: onnxruntime's arena and activations. Approximate: RSS is per process, so models and threads
   * loaded together share the figure, and device memory under CUDA is not in it (there, weights are the estimate).
   */
  readonly workspaceBytes: number;
  readonly threads: number;
}

export interface ModelLoaderOptions {
  readonly registry: ModelRegistry;
  readonly store: ModelStore;
  readonly pool: InferenceThreadPool;
  readonly logger: Logger;
  /** Only for the 'model loaded' log line: the threads were configured with them. */
  readonly executionProviders: readonly string[];
}

export class ModelLoader {
  /** Loads in flight or done; a failed one is removed so that it is tried again. */
  private readonly loads = new Map<string, Promise<ModelLoadSpec>>();
  /** Models whose sessions exist on every thread: passes can be dispatched for them without waiting. */
  private readonly loaded = new Map<string, ModelLoadSpec>();

  constructor(private readonly options: ModelLoaderOptions) {}

  /**
   * Verifies the model's files and loads its sessions on every thread, once; a failure lets the next call retry.
   * Rejects with InferenceError: ModelNotFound (unknown model, missing or incompatible files), ModelCorrupted (a
   * reload from the source has started) or InferenceFailed (sessions could not be created).
   */
  ensureReady(name: string): Promise<ModelLoadSpec> {
    let loading = this.loads.get(name);
    if (!loading) {
      loading = this.load(name);
      this.loads.set(name, loading);
      loading.catch(() => this.loads.delete(name));
    }
    return loading;
  }

  /** Loads the models one after another (the backend's preload list), stopping at the first failure. */
  async preload(models: readonly string[]): Promise<void> {
    for (const model of models) await this.ensureReady(model);
  }

  /** The load spec of a model ready on every thread; undefined while it is not. */
  spec(name: string): ModelLoadSpec | undefined {
    return this.loaded.get(name);
  }

  isLoaded(name: string): boolean {
    return this.loaded.has(name);
  }

  /** Resolves when no reload of `model` from its source is in flight. */
  async reloadSettled(model: string): Promise<void> {
    await this.options.store.settled(model);
  }

  /** Files verified and fetched, corruptions found and reloads from the source. */
  get fileCounters(): ModelStoreCounters {
    return this.options.store.counters;
  }

  /** The models with sessions on at least one thread, their memory summed over threads. */
  loadedModels(): OnnxLoadedModelStatus[] {
    type Totals = { weightBytes: number; workspaceBytes: number; threads: number; executionProvider: string };
    const models = new Map<string, Totals>();
    for (const thread of this.options.pool.threads) {
      for (const report of thread.models.values()) {
        const entry = models.get(report.model) ?? {
          weightBytes: 0,
          workspaceBytes: 0,
          threads: 0,
          executionProvider: report.executionProvider,
        };
        entry.weightBytes += report.weightBytes;
        entry.workspaceBytes += report.workspaceBytes;
        entry.threads++;
        models.set(report.model, entry);
      }
    }
    return [...models].map(([model, m]) => ({
      model,
      memoryBytes: m.weightBytes + m.workspaceBytes,
      executionProvider: m.executionProvider,
      weightBytes: m.weightBytes,
      workspaceBytes: m.workspaceBytes,
      threads: m.threads,
    }));
  }

  private async load(name: string): Promise<ModelLoadSpec> {
    const { registry, store, pool, logger } = this.options;
    const model = registry.get(name);
    if (!model) throw new InferenceError('ModelNotFound', `Model ${name} is not in the registry`);
    const dir = await store.ensureVerified(name);
    const spec: ModelLoadSpec = {
      model: name,
      dir,
      scheduler: model.scheduler,
      ...(model.vaeScalingFactor !== undefined ? { vaeScalingFactor: model.vaeScalingFactor } : {}),
    };
    try {
      await pool.loadEverywhere(spec);
    } catch (err) {
      // An export whose inputs or outputs do not match the pipeline will never load: that is the model's fault.
      const incompatible = err instanceof InferenceThreadError && err.incompatibleExport;
      throw new InferenceError(
        incompatible ? 'ModelNotFound' : 'InferenceFailed',
        `Model ${name}: creating sessions failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.loaded.set(name, spec);
    logger.info({ model: name, dir, executionProviders: this.options.executionProviders }, 'model loaded');
    return spec;
  }
}
