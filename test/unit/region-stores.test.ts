// The object stores of several regions (runtime/region-stores.ts): ATELIER_PEER_STORAGE's rules, which store holds a
// region's staged images, and the gateway's read-through: its own region first, then each peer, a peer that cannot
// be read passed over, and "unavailable" rather than "not found" when one failed and none had the image.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsObjectStore, type ObjectStore } from '../../runtime/object-store';
import { parsePeerStorage, ReadThroughRegionStore, RegionStores } from '../../runtime/region-stores';

describe('ATELIER_PEER_STORAGE', () => {
  test('region=directory pairs, spaces and empty entries ignored', () => {
    assert.deepEqual(parsePeerStorage(' us-east=/data/east , eu-west=/data/eu,', 'us-west'), [
      { region: 'us-east', dir: '/data/east' },
      { region: 'eu-west', dir: '/data/eu' },
    ]);
    assert.deepEqual(parsePeerStorage('', 'us-west'), []);
  });

  test('a malformed entry, a region twice or the own region is refused, naming the variable', () => {
    for (const [raw, message] of [
      ['us-east', /expected region=directory/],
      ['us-east=', /expected region=directory/],
      ['=dir', /expected region=directory/],
      ['US East=/x', /ATELIER_PEER_STORAGE: /],
      ['us-east=/a,us-east=/b', /names us-east twice/],
      ['us-west=/a', /this process's own region/],
    ] as const) {
      assert.throws(() => parsePeerStorage(raw, 'us-west'), message, raw);
    }
  });
});

describe('the stores of several regions', () => {
  let root: string;
  let own: FsObjectStore;
  let east: FsObjectStore;
  let eu: FsObjectStore;
  const key = 'images/user-1/req-1/0-0123456789abcdef0123456789abcdef.png';

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'atelier-region-stores-'));
    [own, east, eu] = ['us-west', 'us-east', 'eu-west'].map((r) => new FsObjectStore(path.join(root, r))) as [
      FsObjectStore,
      FsObjectStore,
      FsObjectStore,
    ];
  });
  after(async () => rm(root, { recursive: true, force: true }));

  const stores = (): RegionStores =>
    new RegionStores('us-west', own, [
      { region: 'us-east', store: east },
      { region: 'eu-west', store: eu },
    ]);

  test("staged images are read from their region's store; a region without one shares this one's", () => {
    const s = stores();
    assert.equal(s.storeOf('us-east'), east);
    assert.equal(s.storeOf('us-west'), own);
    assert.equal(s.storeOf(undefined), own, 'a history from before regions had stores');
    assert.equal(s.storeOf('ap-south'), own, 'a region whose store is not configured here');
  });

  test('read-through: own region first, then the peers in order; each read from a peer is reported', async () => {
    const reads: string[] = [];
    const through = new ReadThroughRegionStore(stores(), (region) => reads.push(region));
    assert.equal(await through.head(key), null, 'nowhere yet');
    await eu.put(key, Buffer.from('from eu-west'));
    assert.equal((await through.get(key))?.body.toString(), 'from eu-west');
    await east.put(key, Buffer.from('from us-east'));
    const streamed = await through.getStream(key);
    assert.ok(streamed);
    streamed.body.destroy();
    assert.equal(streamed.info.size, 'from us-east'.length, 'the nearer peer is asked first');
    await own.put(key, Buffer.from('replicated'));
    assert.equal((await through.get(key))?.body.toString(), 'replicated');
    assert.deepEqual(reads, ['eu-west', 'us-east'], 'the own copy is not a peer read');
  });

  test('writes and deletes touch the own store only', async () => {
    const through = new ReadThroughRegionStore(stores());
    const other = 'images/user-1/req-2/0-0123456789abcdef0123456789abcdef.png';
    await east.put(other, Buffer.from('east'));
    await through.put(other, Buffer.from('west'));
    await through.delete(other);
    assert.equal(await own.head(other), null);
    assert.equal((await east.get(other))?.body.toString(), 'east');
  });

  test('a peer that fails is passed over; when none has the image the failure is raised, not "not found"', async () => {
    const broken: ObjectStore = {
      put: () => Promise.reject(new Error('unreachable')),
      get: () => Promise.reject(new Error('unreachable')),
      getStream: () => Promise.reject(new Error('unreachable')),
      head: () => Promise.reject(new Error('unreachable')),
      delete: () => Promise.reject(new Error('unreachable')),
    };
    const withBroken = new ReadThroughRegionStore(
      new RegionStores('us-west', own, [
        { region: 'us-east', store: broken },
        { region: 'eu-west', store: eu },
      ]),
    );
    const onlyInEu = 'images/user-1/req-3/0-0123456789abcdef0123456789abcdef.png';
    await eu.put(onlyInEu, Buffer.from('eu'));
    assert.equal((await withBroken.get(onlyInEu))?.body.toString(), 'eu');
    await assert.rejects(withBroken.head('images/user-1/req-4/0-0123456789abcdef0123456789abcdef.png'), /unreachable/);
  });
});
