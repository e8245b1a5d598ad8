// Images across regions (issue 12, seed 001 "eventual consistency"): each region stores what it generates in its own
// object store, and the stores of the other regions are its peers. A process reads a peer's store directly, as a
// service in one cloud region reads another region's bucket: the storage activity takes staged images from the region
// whose GPU made them, the gateway serves an image from its origin region until replication (image-replication.ts)
// has copied it to its own. Writes only ever go to the process's own region.
//
// ATELIER_PEER_STORAGE lists the peers as `region=location,...`; `npm start` with ATELIER_REGIONS sets it, one
// directory per region. Without it a deployment has one store, which every region shares.
import path from 'node:path';
import type { Readable } from 'node:stream';
import { assertRegion } from '../core/gpu';
import { withInjectedLatency } from './delayed-object-store';
import { FsObjectStore, type ObjectInfo, type ObjectStore } from './object-store';

export interface PeerStore {
  readonly region: string;
  readonly store: ObjectStore;
}

/** Parses `region=dir,...`: each region once, never the process's own (whose store is ATELIER_STORAGE_DIR). */
export function parsePeerStorage(
  raw: string,
  ownRegion: string,
  env = 'ATELIER_PEER_STORAGE',
): { readonly region: string; readonly dir: string }[] {
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const peers = entries.map((entry) => {
    const eq = entry.indexOf('=');
    const dir = entry.slice(eq + 1).trim();
    if (eq <= 0 || dir === '') throw new TypeError(`${env}: expected region=directory, got ${JSON.stringify(entry)}`);
    let region: string;
    try {
      region = assertRegion(entry.slice(0, eq).trim());
    } catch (err) {
      throw new TypeError(`${env}: ${(err as Error).message}`);
    }
    return { region, dir };
  });
  const regions = peers.map((p) => p.region);
  const twice = regions.find((r, i) => regions.indexOf(r) !== i);
  if (twice !== undefined) throw new TypeError(`${env} names ${twice} twice`);
  if (regions.includes(ownRegion)) {
    throw new TypeError(`${env} names ${ownRegion}, this process's own region: its store is ATELIER_STORAGE_DIR`);
  }
  return peers;
}

/** The store of this process's region and those of its peers. */
export class RegionStores {
  constructor(
    readonly region: string,
    readonly own: ObjectStore,
    readonly peers: readonly PeerStore[],
  ) {}

  /**
   * The store of `region`: the own one for this region, a peer's, and the own one too for a region with no store of
   * its own configured (a deployment whose regions share one store, or a history from before stores were per region).
   */
  storeOf(region: string | undefined): ObjectStore {
    if (region === undefined || region === this.region) return this.own;
    return this.peers.find((p) => p.region === region)?.store ?? this.own;
  }
}

/** Opens the stores the shared options name: the own directory, and each peer's (behind the chaos delay if any). */
export function openRegionStores(options: {
  readonly region: string;
  readonly storageDir: string;
  readonly peerStorage: string;
  readonly chaosStorageLatencyMs: number;
}): RegionStores {
  const open = (dir: string): ObjectStore =>
    withInjectedLatency(new FsObjectStore(path.resolve(dir)), options.chaosStorageLatencyMs);
  const peers = parsePeerStorage(options.peerStorage, options.region).map((p) => ({
    region: p.region,
    store: open(p.dir),
  }));
  return new RegionStores(options.region, open(options.storageDir), peers);
}

/**
 * What a gateway serves from: its own region's store first, then each peer's in order, so an image stored in another
 * region is found at its origin until it is replicated here. Writes and deletes go to the own store only.
 */
export class ReadThroughRegionStore implements ObjectStore {
  constructor(
    private readonly stores: RegionStores,
    /** Told of each object found at a peer rather than here (a read from the origin region, before replication). */
    private readonly onPeerRead: (region: string) => void = () => undefined,
  ) {}

  put(key: string, body: Buffer, metadata?: Record<string, string>, contentType?: string): Promise<ObjectInfo> {
    return this.stores.own.put(key, body, metadata, contentType);
  }

  delete(key: string): Promise<void> {
    return this.stores.own.delete(key);
  }

  get(key: string): Promise<{ body: Buffer; info: ObjectInfo } | null> {
    return this.first((store) => store.get(key));
  }

  getStream(key: string): Promise<{ body: Readable; info: ObjectInfo } | null> {
    return this.first((store) => store.getStream(key));
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.first((store) => store.head(key));
  }

  private async first<T>(read: (store: ObjectStore) => Promise<T | null>): Promise<T | null> {
    const own = await read(this.stores.own);
    if (own !== null) return own;
    let failure: unknown;
    for (const peer of this.stores.peers) {
      // A peer that cannot be read (its region down with its store) is passed over: the next may have a copy. Only
      // when none has it does the failure count, as "unavailable" rather than "no such image".
      const found = await read(peer.store).catch((err: unknown) => {
        failure ??= err;
        return null;
      });
      if (found !== null) {
        this.onPeerRead(peer.region);
        return found;
      }
    }
    if (failure !== undefined) throw failure;
    return null;
  }
}
