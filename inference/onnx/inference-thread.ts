// Entry point of an inference thread (worker_threads). It owns onnxruntime sessions for the models it has loaded and
// runs one batched pass at a time, posting progress per step. The main thread never calls session.run, so its event
// loop (Temporal heartbeats, cancellation, Redis) keeps turning during inference.
import { parentPort, workerData } from 'node:worker_threads';
import { injectedOutOfMemoryError, isOutOfMemoryMessage } from './out-of-memory';
import { IncompatibleExportError, StableDiffusionPipeline } from './pipeline';
import { sessionOptions } from './session-options';
import type {
  FromThread,
  InferenceThreadConfig,
  LoadedModelReport,
  ModelLoadSpec,
  SerializedError,
  ToThread,
} from './thread-protocol';

if (!parentPort) throw new Error('inference-thread.ts runs only as a worker thread');
const port = parentPort;
const config = workerData as InferenceThreadConfig;

interface LoadedModel {
  readonly dir: string;
  readonly pipeline: Promise<StableDiffusionPipeline>;
  /** Process RSS right after the sessions were created, and the most seen after a pass of this model. */
  baselineRss: number;
  peakRss: number;
}

const loaded = new Map<string, LoadedModel>();

function post(message: FromThread, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function serializeError(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    name: e.name,
    message: e.message,
    ...(e.stack !== undefined ? { stack: e.stack } : {}),
    outOfMemory: isOutOfMemoryMessage(e.message),
    incompatibleExport: e instanceof IncompatibleExportError,
  };
}

async function ensureLoaded(spec: ModelLoadSpec): Promise<LoadedModel> {
  const existing = loaded.get(spec.model);
  if (existing && existing.dir === spec.dir) return existing;
  if (existing) {
    loaded.delete(spec.model);
    await (await existing.pipeline).release();
  }
  const entry: LoadedModel = {
    dir: spec.dir,
    pipeline: StableDiffusionPipeline.load({
      dir: spec.dir,
      scheduler: spec.scheduler,
      ...(spec.vaeScalingFactor !== undefined ? { vaeScalingFactor: spec.vaeScalingFactor } : {}),
      sessionOptions: sessionOptions(config),
    }),
    baselineRss: 0,
    peakRss: 0,
  };
  loaded.set(spec.model, entry);
  try {
    await entry.pipeline;
  } catch (err) {
    loaded.delete(spec.model);
    throw err;
  }
  entry.baselineRss = entry.peakRss = process.memoryUsage.rss();
  return entry;
}

async function report(model: string, entry: LoadedModel): Promise<LoadedModelReport> {
  const pipeline = await entry.pipeline;
  return {
    model,
    weightBytes: pipeline.weightBytes,
    workspaceBytes: Math.max(0, entry.peakRss - entry.baselineRss),
    executionProvider: config.executionProviders[0] ?? 'cpu',
  };
}

async function handle(message: ToThread): Promise<void> {
  switch (message.type) {
    case 'load':
      try {
        const entry = await ensureLoaded(message.spec);
        post({ type: 'loaded', requestId: message.requestId, report: await report(message.spec.model, entry) });
      } catch (err) {
        post({ type: 'load-failed', requestId: message.requestId, error: serializeError(err) });
      }
      return;
    case 'unload': {
      const entry = loaded.get(message.model);
      loaded.delete(message.model);
      if (entry) await (await entry.pipeline).release().catch(() => undefined);
      post({ type: 'unloaded', requestId: message.requestId });
      return;
    }
    case 'run': {
      const { passId, members, params } = message;
      const flags = new Int32Array(message.cancelFlags);
      const indexOf = new Map(members.map((m, i) => [m.memberId, i]));
      try {
        const entry = await ensureLoaded(message.spec);
        const pipeline = await entry.pipeline;
        const limit = config.injectOomAboveMembers;
        const result = await pipeline.run(members, params, {
          isCancelled: (memberId) => Atomics.load(flags, indexOf.get(memberId) ?? 0) !== 0,
          onStep: (step, totalSteps, memberIds) => {
            // Visible to the main thread at once; the step message below can trail the thread.
            Atomics.store(flags, members.length, step);
            post({ type: 'step', passId, step, totalSteps, memberIds });
          },
          onDropped: (memberId, completedSteps) => post({ type: 'dropped', passId, memberId, completedSteps }),
          ...(limit !== undefined
            ? {
                beforeUnet: (n: number) => {
                  if (n > limit) throw injectedOutOfMemoryError(n, limit);
                },
              }
            : {}),
        });
        entry.peakRss = Math.max(entry.peakRss, process.memoryUsage.rss());
        // Each image owns its ArrayBuffer, so its planes are transferred rather than cloned.
        post(
          {
            type: 'pass-done',
            passId,
            images: result.images,
            timings: result.timings,
            report: await report(message.spec.model, entry),
          },
          result.images.map((img) => img.planes.buffer as ArrayBuffer),
        );
      } catch (err) {
        post({ type: 'pass-failed', passId, error: serializeError(err) });
      }
      return;
    }
  }
}

port.on('message', (message: ToThread) => {
  void handle(message);
});
post({ type: 'ready' });
