// The filesystem object store: round trips with metadata, atomic replacement, deletion, key validation, and
// streamed reads (also through the chaos latency wrapper).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DelayedObjectStore } from '../../runtime/delayed-object-store';
import { FsObjectStore, InvalidObjectKeyError, sha256Hex } from '../../runtime/object-store';

async function readAll(stream: Readable): Promise<{ body: Buffer; chunks: number }> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return { body: Buffer.concat(chunks), chunks: chunks.length };
}

describe('FsObjectStore', () => {
  test('stores and returns a body with its hash and metadata', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    const body = Buffer.from('not really a png');
    const info = await store.put('images/gen:u:r1/0-abc.png', body, { requestId: 'r1' });
    assert.equal(info.sha256, sha256Hex(body));
    assert.equal(info.size, body.length);
    const got = await store.get('images/gen:u:r1/0-abc.png');
    assert.ok(got);
    assert.deepEqual(got.body, body);
    assert.deepEqual(got.info.metadata, { requestId: 'r1' });
    assert.equal(got.info.contentType, 'image/png');
  });

  test('re-putting the same body keeps the creation time; delete removes it; missing keys give null', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    const first = await store.put('a/b.png', Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 5));
    const second = await store.put('a/b.png', Buffer.from('x'));
    assert.equal(second.createdAt, first.createdAt);
    await store.delete('a/b.png');
    assert.equal(await store.get('a/b.png'), null);
    assert.equal(await store.head('a/b.png'), null);
    await store.delete('a/b.png');
  });

  test('getStream streams the stored body in chunks with its info; missing objects give null', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const info = await store.put('images/u/r/0.png', body);
    const opened = await store.getStream('images/u/r/0.png');
    assert.ok(opened);
    assert.deepEqual(opened.info, info);
    const read = await readAll(opened.body);
    assert.ok(read.body.equals(body), 'the same bytes');
    // Read in pieces (64 KiB each by default), never as one buffer of the whole body.
    assert.ok(read.chunks > 1, `${read.chunks} chunks`);

    assert.equal(await store.getStream('images/u/r/missing.png'), null);
    // A body without its metadata is invisible, as for get().
    await store.put('images/u/r/1.png', Buffer.from('x'));
    await rm(path.join(store.rootDir, 'images/u/r/1.png.meta.json'));
    assert.equal(await store.getStream('images/u/r/1.png'), null);
    await assert.rejects(store.getStream('../etc/passwd'), InvalidObjectKeyError);
  });

  test('a stream opened before a delete still reads the whole body', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    const body = randomBytes(256 * 1024);
    await store.put('a/c.png', body);
    const opened = await store.getStream('a/c.png');
    assert.ok(opened);
    await store.delete('a/c.png');
    assert.ok((await readAll(opened.body)).body.equals(body));
    assert.equal(await store.getStream('a/c.png'), null);
  });

  test('the chaos latency wrapper delays getStream and passes the stream through', async () => {
    const inner = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    const delayed = new DelayedObjectStore(inner, 50);
    const body = Buffer.from('slow region');
    await inner.put('a/d.png', body);
    const started = Date.now();
    const opened = await delayed.getStream('a/d.png');
    assert.ok(Date.now() - started >= 45, 'delayed');
    assert.ok(opened);
    assert.ok((await readAll(opened.body)).body.equals(body));
    assert.equal(await delayed.getStream('a/missing.png'), null);
  });

  test('rejects keys that could escape the root or are malformed', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    for (const key of ['../etc/passwd', 'a/../../b', '/abs', 'a//b', '', 'a/./b', 'sp ace', 'a\\b', '.hidden']) {
      await assert.rejects(store.get(key), InvalidObjectKeyError, key);
    }
  });
});
