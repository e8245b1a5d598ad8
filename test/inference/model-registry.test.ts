// The model registry and cache: manifests are validated up front, files come from a local folder or a URL and are
// verified while they stream in, and a bad source is reported as such instead of being cached.
import assert from 'node:assert/strict';
import { cpSync, createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InferenceError } from '../../inference/backend';
import { ModelRegistry, ModelStore } from '../../inference/onnx/model-registry';
import { createLogger } from '../../runtime/logger';
import { REGISTRY_PATH, tempDir, TINY_SD_SOURCE } from './fixtures';

const logger = createLogger('model-registry-test');
const registryJson = (): { version: number; models: Record<string, unknown>[] } =>
  JSON.parse(readFileSync(REGISTRY_PATH, 'utf8')) as never;
const tinyEntry = (): Record<string, unknown> =>
  registryJson().models.find((m) => m.name === 'tiny-sd') as Record<string, unknown>;

describe('model registry', () => {
  test('rejects a manifest with a bad checksum, a missing pipeline file or a duplicate model, naming the problem', () => {
    const entry = tinyEntry();
    const files = entry.files as { path: string; sha256: string; size: number }[];
    assert.throws(
      () =>
        ModelRegistry.fromJson(
          { version: 1, models: [{ ...entry, files: files.map((f, i) => (i === 0 ? { ...f, sha256: 'abc' } : f)) }] },
          '.',
        ),
      /sha256/,
    );
    assert.throws(
      () =>
        ModelRegistry.fromJson(
          { version: 1, models: [{ ...entry, files: files.filter((f) => f.path !== 'unet/model.onnx') }] },
          '.',
        ),
      /unet\/model\.onnx/,
    );
    assert.throws(() => ModelRegistry.fromJson({ version: 1, models: [entry, entry] }, '.'), /twice/);
    assert.throws(
      () =>
        ModelRegistry.fromJson(
          {
            version: 1,
            models: [{ ...entry, files: [...files, { path: '../escape', sha256: 'a'.repeat(64), size: 1 }] }],
          },
          '.',
        ),
      /relative path/,
    );
  });

  test('an unknown model is ModelNotFound', async () => {
    const cache = tempDir('cache');
    try {
      const store = new ModelStore(await ModelRegistry.load(REGISTRY_PATH), cache.path, logger);
      await assert.rejects(
        store.ensureVerified('sd-none'),
        (err: unknown) => err instanceof InferenceError && err.failureType === 'ModelNotFound',
      );
    } finally {
      cache.cleanup();
    }
  });

  describe('a URL source', () => {
    let server: Server;
    let baseUrl: string;
    const requested: string[] = [];
    before(async () => {
      // Serves models/tiny-sd over HTTP on the loopback interface, as a model bucket would.
      server = createServer((req, res) => {
        const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/tiny-sd\//, '');
        requested.push(path);
        const file = join(TINY_SD_SOURCE, path);
        if (path.includes('..') || !existsSync(file)) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        createReadStream(file).pipe(res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny-sd`;
    });
    after(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    test('downloads every file into the cache, verified', async () => {
      const cache = tempDir('cache');
      try {
        const registry = ModelRegistry.fromJson(
          { version: 1, models: [{ ...tinyEntry(), source: { url: baseUrl } }] },
          '.',
        );
        const store = new ModelStore(registry, cache.path, logger);
        const dir = await store.ensureVerified('tiny-sd');
        const files = registry.get('tiny-sd')?.files ?? [];
        assert.equal(store.counters.filesFetched, files.length);
        for (const f of files)
          assert.deepEqual(readFileSync(join(dir, f.path)), readFileSync(join(TINY_SD_SOURCE, f.path)), f.path);
        // A second load verifies the cache and downloads nothing.
        requested.length = 0;
        await store.ensureVerified('tiny-sd');
        assert.deepEqual(requested, []);
        assert.equal(store.counters.filesVerified, files.length);
      } finally {
        cache.cleanup();
      }
    });

    test('a file the source does not have is ModelNotFound', async () => {
      const cache = tempDir('cache');
      try {
        const entry = tinyEntry();
        const files = [...(entry.files as object[]), { path: 'unet/weights.pb', sha256: 'b'.repeat(64), size: 10 }];
        const store = new ModelStore(
          ModelRegistry.fromJson({ version: 1, models: [{ ...entry, files, source: { url: baseUrl } }] }, '.'),
          cache.path,
          logger,
        );
        await assert.rejects(
          store.ensureVerified('tiny-sd'),
          (err: unknown) => err instanceof InferenceError && err.failureType === 'ModelNotFound',
        );
      } finally {
        cache.cleanup();
      }
    });
  });

  test('a source whose copy is itself corrupted fails with ModelCorrupted and is never cached', async () => {
    const source = tempDir('bad-source');
    const cache = tempDir('cache');
    try {
      cpSync(TINY_SD_SOURCE, join(source.path, 'tiny-sd'), { recursive: true });
      const te = join(source.path, 'tiny-sd', 'text_encoder', 'model.onnx');
      const bytes = readFileSync(te);
      bytes.writeUInt8(bytes.readUInt8(100) ^ 0x01, 100);
      writeFileSync(te, bytes);
      const store = new ModelStore(
        ModelRegistry.fromJson({ version: 1, models: [tinyEntry()] }, source.path),
        cache.path,
        logger,
      );
      for (let attempt = 0; attempt < 2; attempt++) {
        await assert.rejects(
          store.ensureVerified('tiny-sd'),
          (err: unknown) =>
            err instanceof InferenceError &&
            err.failureType === 'ModelCorrupted' &&
            err.message.includes("source's text_encoder/model.onnx"),
        );
      }
      assert.equal(existsSync(join(cache.path, 'tiny-sd', 'text_encoder', 'model.onnx')), false);
    } finally {
      source.cleanup();
      cache.cleanup();
    }
  });
});
