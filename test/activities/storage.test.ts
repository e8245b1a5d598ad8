// The storeImages activity against a real filesystem object store: final keys with metadata, staging removed,
// and idempotency: re-running (after success, or after a crash between the upload and the clean-up) yields the
// same keys and never a second copy; unrecoverable inputs fail without retries.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { renderSimulatedImage } from '../../inference/simulated';
import { finalImageKey, isFinalImageKey, promptHash, stagingImageKey } from '../../runtime/object-keys';
import { createStorageActivities } from '../../activities/storage';
import { MemoryEventLog } from '../helpers/memory-event-log';
import type { StoreImagesInput, StoreImagesOutput } from '../../core/activities';
import { FsObjectStore, sha256Hex } from '../../runtime/object-store';

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('storeImages activity', () => {
  let dir: string;
  let store: FsObjectStore;
  const eventLog = new MemoryEventLog();
  /** Runs the activity as a worker would: in the activity context of the request's workflow, against this store. */
  const storeImages = (input: StoreImagesInput, runId = 'run-1'): Promise<StoreImagesOutput> =>
    new MockActivityEnvironment(
      { activityType: 'storeImages', workflowExecution: { workflowId: logId(input.requestId), runId } },
      { logger: new DefaultLogger('ERROR') },
    ).run(createStorageActivities({ store, eventLog }).storeImages, input);
  const logId = (requestId: string): string => `gen:user-1:${requestId}`;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-storage-'));
    store = new FsObjectStore(dir);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  /** Stages `n` PNGs as the inference activity would and returns the storage input for them. */
  async function stage(
    requestId: string,
    n: number,
    size = { width: 256, height: 192 },
    { runId = 'run-1', prompt = 'a quiet harbour' } = {},
  ): Promise<StoreImagesInput> {
    const stagingKeys: string[] = [];
    for (let i = 0; i < n; i++) {
      const key = stagingImageKey('user-1', requestId, runId, i);
      await store.put(key, renderSimulatedImage(size.width, size.height, 100 + i, prompt));
      stagingKeys.push(key);
    }
    return {
      requestId,
      userId: 'user-1',
      model: 'sdxl',
      prompt,
      stagingKeys,
      seeds: stagingKeys.map((_, i) => 100 + i),
      ...size,
    };
  }

  test('moves staged images to their final keys (from the run and the bytes) with metadata and removes staging', async () => {
    const req = await stage('req-a', 2);
    const staged = await Promise.all(req.stagingKeys.map(async (k) => (await store.get(k))?.body));
    const out = await storeImages(req);

    assert.equal(out.images.length, 2);
    for (const [i, image] of out.images.entries()) {
      const body = staged[i] as Buffer;
      assert.equal(image.sha256, sha256Hex(body));
      assert.equal(image.key, finalImageKey('user-1', 'req-a', 'run-1', i, image.sha256));
      assert.match(image.key, new RegExp(`^images/user-1/req-a/${i}-[0-9a-f]{32}\\.png$`));
      assert.ok(isFinalImageKey(image.key), image.key);
      assert.ok(!image.key.includes(image.sha256.slice(0, 16)), 'the key does not reveal the content hash');
      assert.deepEqual([image.width, image.height, image.seed, image.bytes], [256, 192, 100 + i, body.length]);
      const stored = await store.get(image.key);
      assert.ok(stored, `${image.key} stored`);
      assert.ok(stored.body.equals(body), 'the stored bytes are the staged bytes');
      assert.deepEqual(stored.info.metadata, {
        requestId: 'req-a',
        userId: 'user-1',
        model: 'sdxl',
        seed: String(100 + i),
        promptSha256: promptHash('a quiet harbour'),
        width: '256',
        height: '192',
      });
    }
    for (const key of req.stagingKeys) assert.equal(await store.head(key), null, `${key} removed`);

    // The client hears `uploading`, then the one terminal `completed` with the stored images.
    assert.equal(out.terminalPublished, true);
    const images = out.images.map(({ key, width, height, seed }) => ({ key, width, height, seed }));
    assert.deepEqual(eventLog.events(logId('req-a')), [
      { type: 'status', status: 'uploading' },
      { type: 'completed', images },
    ]);
  });

  test('running again after success returns the same keys and stores nothing twice', async () => {
    const req = await stage('req-b', 2);
    const first = await storeImages(req);
    const filesAfterFirst = await listFiles(dir);
    const createdAt = await Promise.all(first.images.map(async (i) => (await store.head(i.key))?.createdAt));
    const second = await storeImages(req);
    assert.deepEqual(second, first);
    assert.equal(eventLog.events(logId('req-b')).length, 2, 'uploading and completed, each once');
    assert.deepEqual(await listFiles(dir), filesAfterFirst, 'no new objects');
    assert.deepEqual(await Promise.all(first.images.map(async (i) => (await store.head(i.key))?.createdAt)), createdAt);
  });

  test('a retry after a crash before the staging clean-up converges to the same result', async () => {
    const req = await stage('req-c', 1);
    const stagedCopy = (await store.get(req.stagingKeys[0] as string))?.body as Buffer;
    const first = await storeImages(req);
    // The crash: the previous attempt stored everything but its staging deletes never happened.
    await store.put(req.stagingKeys[0] as string, stagedCopy);
    const retry = await storeImages(req);
    assert.deepEqual(retry, first);
    assert.equal(await store.head(req.stagingKeys[0] as string), null, 'the retry finished the clean-up');
    const finals = (await listFiles(dir)).filter(
      (f) => f.startsWith(path.join('images', 'user-1', 'req-c')) && f.endsWith('.png'),
    );
    assert.equal(finals.length, 1, `one final image: ${finals.join(', ')}`);
  });

  test('missing or mis-sized staged images fail without retries (StagedImagesInvalid, non-retryable, STORAGE_FAILED)', async () => {
    const missing = await stage('req-d', 1);
    await store.delete(missing.stagingKeys[0] as string);
    const wrongSize = { ...(await stage('req-e', 1)), width: 512 };
    for (const req of [missing, wrongSize]) {
      await assert.rejects(storeImages(req), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, 'StagedImagesInvalid');
        assert.equal(err.nonRetryable, true);
        return true;
      });
      const events = eventLog.events(logId(req.requestId));
      assert.ok(!events.some((e) => e.type === 'completed'), 'no completed event for images that were not stored');
    }
  });

  test("a requestId reused by a new run never gets the earlier request's images", async () => {
    const earlier = await stage('req-reused', 1, undefined, { runId: 'run-old', prompt: 'a red fox' });
    const old = await storeImages(earlier, 'run-old');
    // Temporal's retention is over; the same requestId starts a new workflow run with a new prompt.
    const later = await stage('req-reused', 1, undefined, { runId: 'run-new', prompt: 'a blue whale' });
    const fresh = await storeImages(later, 'run-new');
    assert.notDeepEqual(
      fresh.images.map((i) => i.sha256),
      old.images.map((i) => i.sha256),
    );
    const stored = await store.get(fresh.images[0]?.key ?? '');
    assert.equal(stored?.info.metadata.promptSha256, promptHash('a blue whale'));
    // And a retry of the new run gets the new run's result back, from the manifest now bound to it.
    assert.deepEqual(await storeImages(later, 'run-new'), fresh);
  });

  test('the same bytes stored by another run of the same request get another key', async () => {
    const first = await storeImages(await stage('req-same', 1, undefined, { runId: 'run-x' }), 'run-x');
    const second = await storeImages(await stage('req-same', 1, undefined, { runId: 'run-y' }), 'run-y');
    assert.equal(first.images[0]?.sha256, second.images[0]?.sha256, 'identical bytes');
    assert.notEqual(first.images[0]?.key, second.images[0]?.key);
    assert.ok(await store.head(first.images[0]?.key ?? ''), "the earlier run's image stays where it was");
  });

  test("staging keys that are not this request's run's are refused (another user's image, a path escape)", async () => {
    const other = await stage('req-victim', 1);
    const own = await stage('req-f', 1);
    const attempts = [
      other.stagingKeys[0] as string,
      'staging/user-2/req-f/run-1/0.png',
      `staging/user-1/req-f/run-1/../../req-victim/run-1/0.png`,
      stagingImageKey('user-1', 'req-f', 'run-other', 0),
    ];
    for (const key of attempts) {
      await assert.rejects(storeImages({ ...own, stagingKeys: [key] }), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, 'StagedImagesInvalid', key);
        assert.equal(err.nonRetryable, true);
        return true;
      });
    }
    assert.ok(await store.head(other.stagingKeys[0] as string), "the other request's staged image is untouched");
  });

  test("a request whose GPU step ran in another region: its staged images are read from that region's store, the final ones stored here and announced to the peers", async () => {
    const peerDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-storage-peer-'));
    try {
      const peer = new FsObjectStore(peerDir);
      const staged = renderSimulatedImage(256, 192, 100, 'a quiet harbour');
      const stagingKey = stagingImageKey('user-1', 'req-moved', 'run-1', 0);
      await peer.put(stagingKey, staged);
      const announced: string[][] = [];
      const activities = createStorageActivities({
        store,
        eventLog,
        stagedIn: (region) => (region === 'us-east' ? peer : store),
        replicate: (keys) => {
          announced.push([...keys]);
          return Promise.resolve();
        },
      });
      const input: StoreImagesInput = {
        requestId: 'req-moved',
        userId: 'user-1',
        model: 'sdxl',
        prompt: 'a quiet harbour',
        stagingKeys: [stagingKey],
        stagedRegion: 'us-east',
        seeds: [100],
        width: 256,
        height: 192,
      };
      const run = (): Promise<StoreImagesOutput> =>
        new MockActivityEnvironment(
          { activityType: 'storeImages', workflowExecution: { workflowId: logId('req-moved'), runId: 'run-1' } },
          { logger: new DefaultLogger('ERROR') },
        ).run(activities.storeImages, input);
      const out = await run();
      const key = out.images[0]?.key as string;
      assert.ok((await store.get(key))?.body.equals(staged), 'the final image is in this region');
      assert.equal(await peer.head(key), null, 'and not written to the region that staged it');
      assert.equal(await peer.head(stagingKey), null, "the staging copy is removed from the GPU worker's region");
      assert.deepEqual(announced, [[key, 'images/user-1/req-moved/manifest.json']], 'images, then the manifest');
      // A retry that finds the manifest announces again (the first announcement may be what failed).
      assert.deepEqual((await run()).images, out.images);
      assert.equal(announced.length, 2);
    } finally {
      await rm(peerDir, { recursive: true, force: true });
    }
  });
});
