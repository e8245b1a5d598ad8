// The filesystem object store: round trips with metadata, atomic replacement, deletion and key validation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore, InvalidObjectKeyError, sha256Hex } from '../../runtime/object-store';

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

  test('rejects keys that could escape the root or are malformed', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(tmpdir(), 'atelier-store-')));
    for (const key of ['../etc/passwd', 'a/../../b', '/abs', 'a//b', '', 'a/./b', 'sp ace', 'a\\b', '.hidden']) {
      await assert.rejects(store.get(key), InvalidObjectKeyError, key);
    }
  });
});
