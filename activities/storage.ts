// Moves a request's staged PNGs to their final keys (from the run and the bytes: runtime/object-keys.ts) with
// their metadata, then removes the staging copies. Idempotent by request: a retry (after a crash at any point)
// yields the same keys and never a second copy, because final keys depend only on the run and the bytes, and a
// manifest written last records the finished result for retries that find the staging copies already gone. It
// says `uploading` when it starts and publishes the request's `completed` terminal once the images are stored
// (activities/request-events.ts).
//
// Across regions (runtime/region-stores.ts): the staged PNGs are read from the store of the region whose GPU worker
// made them (a request that failed over ran its GPU step elsewhere), the final images go to this region's store, and
// the other regions are told to copy them (runtime/image-replication.ts).
//
// Nothing from elsewhere is trusted: the staging keys the GPU worker returned must be exactly the keys of this
// request's run, and a manifest counts only when it is bound to this very request (its workflow run, prompt hash,
// model, size and seeds). A requestId reused after Temporal's retention starts a new run, which never gets the
// earlier request's images.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { imageRefs, type StorageActivities, type StoreImagesInput, type StoreImagesOutput } from '../core/activities';
import type { RequestEventPublisher } from '../runtime/event-log';
import { sha256Hex, type ObjectStore } from '../runtime/object-store';
import { activityFailure } from './failures';
import {
  activityRunId,
  finalImageKey,
  imageManifestKey,
  legacyStagingImageKey,
  promptHash,
  stagingImageKey,
} from '../runtime/object-keys';
import { announceStatus, announceTerminal } from './request-events';

export interface StorageDeps {
  /** This region's store: the final images go here. */
  readonly store: ObjectStore;
  readonly eventLog: RequestEventPublisher;
  /**
   * The store holding the staged images of a GPU worker of `region` (another region's after a failover,
   * runtime/region-stores.ts). @default `store`
   */
  readonly stagedIn?: (region: string | undefined) => ObjectStore;
  /** Told of each request's stored keys (images, then the manifest) for the other regions' replicas. */
  readonly replicate?: (keys: readonly string[]) => Promise<void>;
}

type StoredImage = StoreImagesOutput['images'][number];

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Width and height from a PNG's IHDR chunk, or null when the bytes are not a PNG. */
export function pngSize(body: Buffer): { width: number; height: number } | null {
  if (body.length < 24 || !body.subarray(0, 8).equals(PNG_SIGNATURE) || body.toString('latin1', 12, 16) !== 'IHDR')
    return null;
  return { width: body.readUInt32BE(16), height: body.readUInt32BE(20) };
}

/** A failure that retrying cannot fix (the staged data is missing or wrong): the request fails with STORAGE_FAILED. */
function unrecoverable(message: string): ApplicationFailure {
  return activityFailure('StagedImagesInvalid', message);
}

/** Object-store errors become retryable `StorageFailed` failures; our own failures pass through as they are. */
function asStorageFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure || !(err instanceof Error)) return err;
  return activityFailure('StorageFailed', `Object store error: ${err.message}`, { cause: err });
}

/** What binds a manifest to the one request it was written for. */
interface ManifestBinding {
  readonly runId: string;
  readonly promptSha256: string;
  readonly model: string;
  readonly width: number;
  readonly height: number;
  readonly seeds: readonly number[];
}

/** The manifest as stored: the result, and whom it belongs to. */
interface Manifest extends StoreImagesOutput {
  readonly binding?: ManifestBinding;
}

function bindingOf(input: StoreImagesInput, runId: string): ManifestBinding {
  const { model, width, height, seeds } = input;
  return { runId, promptSha256: promptHash(input.prompt), model, width, height, seeds: [...seeds] };
}

function sameBinding(a: ManifestBinding | undefined, b: ManifestBinding): boolean {
  return (
    a !== undefined &&
    a.runId === b.runId &&
    a.promptSha256 === b.promptSha256 &&
    a.model === b.model &&
    a.width === b.width &&
    a.height === b.height &&
    a.seeds.length === b.seeds.length &&
    a.seeds.every((seed, i) => seed === b.seeds[i])
  );
}

/**
 * Each staging key must be the one this request's run writes for that image (or, for images staged by workers
 * older than run-scoped keys, the request's legacy key): a faulty or hostile worker cannot make storage publish
 * another request's, or another user's, objects.
 */
function checkStagingKeys(input: StoreImagesInput, runId: string): void {
  if (input.stagingKeys.length !== input.seeds.length) {
    throw unrecoverable(`${input.stagingKeys.length} staged images but ${input.seeds.length} seeds`);
  }
  for (const [index, key] of input.stagingKeys.entries()) {
    const expected = stagingImageKey(input.userId, input.requestId, runId, index);
    if (key !== expected && key !== legacyStagingImageKey(input.userId, input.requestId, index)) {
      throw unrecoverable(`Staging key ${JSON.stringify(key)} is not image ${index} of this request (${expected})`);
    }
  }
}

export function createStorageActivities(deps: StorageDeps): StorageActivities {
  const { store, eventLog } = deps;
  return {
    async storeImages(input: StoreImagesInput): Promise<StoreImagesOutput> {
      const ctx = Context.current();
      const runId = activityRunId(ctx.info);
      checkStagingKeys(input, runId);
      await announceStatus(eventLog, 'uploading');
      const stores = { final: store, staged: deps.stagedIn?.(input.stagedRegion) ?? store };
      const stored = await storeStagedImages(stores, input, bindingOf(input, runId), ctx.log).catch((err: unknown) => {
        throw asStorageFailure(err);
      });
      // Announced again by a retry that found the manifest: the copies are idempotent, a missed one is not.
      const keys = [...stored.images.map((image) => image.key), imageManifestKey(input.userId, input.requestId)];
      await deps.replicate?.(keys).catch((err: unknown) => {
        throw asStorageFailure(err);
      });
      const terminalPublished = await announceTerminal(eventLog, { type: 'completed', images: imageRefs(stored) });
      return { ...stored, terminalPublished };
    },
  };
}

async function storeStagedImages(
  stores: { readonly final: ObjectStore; readonly staged: ObjectStore },
  input: StoreImagesInput,
  binding: ManifestBinding,
  log: Pick<Context['log'], 'warn'>,
): Promise<StoreImagesOutput> {
  const { final: store, staged: stagingStore } = stores;
  const manifestKey = imageManifestKey(input.userId, input.requestId);
  const done = await store.get(manifestKey);
  if (done) {
    const manifest = JSON.parse(done.body.toString('utf8')) as Manifest;
    if (sameBinding(manifest.binding, binding)) {
      // A previous attempt of this request finished; it may have crashed before removing the staging copies.
      await Promise.all(input.stagingKeys.map((key) => stagingStore.delete(key)));
      return { images: manifest.images };
    }
    // An earlier request that used this requestId: its images stay where they are, this one gets its own.
    log.warn('The manifest at this requestId belongs to an earlier request; storing this request and replacing it', {
      requestId: input.requestId,
      earlierRun: manifest.binding?.runId ?? 'unknown',
      run: binding.runId,
    });
  }
  const images: StoredImage[] = [];
  for (const [index, stagingKey] of input.stagingKeys.entries()) {
    const staged = await stagingStore.get(stagingKey);
    if (!staged) throw unrecoverable(`Staged image ${stagingKey} is missing`);
    const size = pngSize(staged.body);
    if (!size || size.width !== input.width || size.height !== input.height) {
      throw unrecoverable(`Staged image ${stagingKey} is not a ${input.width}x${input.height} PNG`);
    }
    const sha256 = sha256Hex(staged.body);
    const key = finalImageKey(input.userId, input.requestId, binding.runId, index, sha256);
    const seed = input.seeds[index] as number;
    // put() of the same bytes under the same key keeps the first createdAt: a re-run is invisible to readers.
    await store.put(key, staged.body, {
      requestId: input.requestId,
      userId: input.userId,
      model: input.model,
      seed: String(seed),
      promptSha256: promptHash(input.prompt),
      width: String(input.width),
      height: String(input.height),
    });
    images.push({ key, width: input.width, height: input.height, seed, sha256, bytes: staged.body.length });
  }
  const output: StoreImagesOutput = { images };
  const manifest: Manifest = { ...output, binding };
  await store.put(
    manifestKey,
    Buffer.from(JSON.stringify(manifest)),
    { requestId: input.requestId, userId: input.userId },
    'application/json',
  );
  await Promise.all(input.stagingKeys.map((key) => stagingStore.delete(key)));
  return output;
}
