// Asynchronous replication of stored images between regions (issue 12; seed 001: eventual consistency across
// regions). The storage activity, once a request's images and manifest are in its region's store, announces them on
// one Redis stream per peer region (`<prefix>replication:<region>`); each region's control workers share a consumer
// group on their region's stream and copy what is announced from the origin's store into their own. Until the copy
// lands, a gateway of that region serves the image from its origin (region-stores.ts ReadThroughRegionStore).
//
// At least once, and harmless twice: a copy of the same bytes under the same key is a no-op (final keys name one body
// forever: object-keys.ts finalImageKey). A copy that fails stays pending in the group and is claimed again after
// `claimIdleMs` by whichever replicator of the region asks first, so a replicator that dies mid-copy loses nothing. A
// region that is down keeps its stream; its replicators catch up when it returns (failback), up to the stream's cap,
// past which its gateways go on reading the oldest images from their origin.
import type { RedisClient } from './redis';
import type { Logger } from './logger';
import type { RegionStores } from './region-stores';

const GROUP = 'replicators';
/** Entries kept per region's stream (about 20 MB of Redis): hours of a busy region's images while a peer is away. */
export const REPLICATION_STREAM_CAP = 100_000;

export function replicationStreamKey(prefix: string, region: string): string {
  return `${prefix}replication:${region}`;
}

/** Announces stored images to the peer regions, for their replicators. */
export class ReplicationLog {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    /** The regions to copy into: every peer of the store's region. */
    private readonly targets: readonly string[],
  ) {}

  /** Queues a copy of `keys` (in order: images, then the manifest that says they are complete) into every peer. */
  async announce(origin: string, keys: readonly string[]): Promise<void> {
    if (this.targets.length === 0 || keys.length === 0) return;
    const fields = ['origin', origin, 'keys', JSON.stringify(keys)];
    // One command per peer's stream, not one pipeline: on a Redis Cluster the streams live on different nodes, and
    // auto-pipelining batches the commands per node anyway.
    await Promise.all(
      this.targets.map((target) =>
        this.redis.xadd(
          replicationStreamKey(this.prefix, target),
          'MAXLEN',
          '~',
          REPLICATION_STREAM_CAP,
          '*',
          ...fields,
        ),
      ),
    );
  }
}

export interface ReplicationOutcome {
  readonly origin: string;
  readonly outcome: 'copied' | 'failed' | 'skipped';
  /** From the announcement to the copy, seconds (copied only). */
  readonly lagSeconds?: number;
}

export interface ImageReplicatorOptions {
  /** A connection of its own: the replicator blocks on it while it waits, and closes it when stopped. */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly stores: RegionStores;
  /** Names this replicator in its group, e.g. `host:pid`. */
  readonly consumer: string;
  readonly log: Logger;
  /** A copy pending this long (its replicator died or failed) is taken over, ms. @default 30000 */
  readonly claimIdleMs?: number;
  /** How long one read waits for new announcements, ms. @default 2000 */
  readonly blockMs?: number;
  readonly onOutcome?: (outcome: ReplicationOutcome) => void;
}

type StreamEntry = [id: string, fields: string[]];

/** Copies the images announced for this process's region from their origin regions' stores into its own. */
export class ImageReplicator {
  private running = false;
  private loop: Promise<void> | undefined;
  private groupReady = false;
  private readonly stream: string;

  constructor(private readonly options: ImageReplicatorOptions) {
    this.stream = replicationStreamKey(options.prefix, options.stores.region);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    // Ends a blocked read at once; a copy in progress is left pending and claimed again later.
    this.options.redis.disconnect();
    await this.loop;
  }

  /** One round: copies taken over from stalled replicators, or else new announcements; returns how many it handled. */
  async runOnce(blockMs = this.options.blockMs ?? 2_000): Promise<number> {
    const { redis, consumer } = this.options;
    await this.ensureGroup();
    const claimIdle = this.options.claimIdleMs ?? 30_000;
    const claimed = (await redis.xautoclaim(this.stream, GROUP, consumer, claimIdle, '0-0', 'COUNT', 16)) as [
      string,
      StreamEntry[],
    ];
    let entries = claimed[1].filter((e): e is StreamEntry => Array.isArray(e) && Array.isArray(e[1]));
    if (entries.length === 0) {
      const read = (await redis.xreadgroup(
        'GROUP',
        GROUP,
        consumer,
        'COUNT',
        16,
        'BLOCK',
        blockMs,
        'STREAMS',
        this.stream,
        '>',
      )) as [string, StreamEntry[]][] | null;
      entries = read?.[0]?.[1] ?? [];
    }
    for (const entry of entries) await this.handle(entry);
    return entries.length;
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.runOnce();
      } catch (err) {
        if (!this.running) return;
        this.options.log.warn({ err }, 'image replication round failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      // From the stream's start: announcements made before this region's first replicator ever ran are copied too.
      await this.options.redis.xgroup('CREATE', this.stream, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
    }
    this.groupReady = true;
  }

  private async handle([id, fields]: StreamEntry): Promise<void> {
    const field = (name: string): string => fields[fields.indexOf(name) + 1] ?? '';
    const origin = field('origin');
    const keys = parseKeys(field('keys'));
    const report = this.options.onOutcome ?? (() => undefined);
    if (keys === null) {
      // Not ours to retry: no later attempt could read it either.
      this.options.log.error({ origin, entry: id }, 'unreadable image replication entry; dropped');
      report({ origin, outcome: 'skipped' });
    } else {
      try {
        const copied = await this.copy(origin, keys);
        const lagSeconds = (Date.now() - Number(id.split('-')[0])) / 1000;
        report(copied ? { origin, outcome: 'copied', lagSeconds } : { origin, outcome: 'skipped' });
      } catch (err) {
        // Left pending: claimed again after claimIdleMs (the origin's store may be back by then).
        this.options.log.warn({ err, origin, entry: id }, 'image replication failed; will retry');
        report({ origin, outcome: 'failed' });
        return;
      }
    }
    await this.options.redis.pipeline().xack(this.stream, GROUP, id).xdel(this.stream, id).exec();
  }

  /** Copies each key missing here (or here with other bytes); false when there was nothing to copy from. */
  private async copy(origin: string, keys: readonly string[]): Promise<boolean> {
    const { stores, log } = this.options;
    const source = stores.peers.find((p) => p.region === origin)?.store;
    if (!source) {
      log.warn({ origin }, 'images announced from a region with no store configured here (ATELIER_PEER_STORAGE)');
      return false;
    }
    for (const key of keys) {
      const object = await source.get(key);
      // Removed at the origin since: nothing to copy, and nothing a reader here could have been promised.
      if (!object) continue;
      const here = await stores.own.head(key);
      if (here?.sha256 === object.info.sha256) continue;
      await stores.own.put(key, object.body, { ...object.info.metadata }, object.info.contentType);
    }
    return true;
  }
}

function parseKeys(raw: string): string[] | null {
  try {
    const keys: unknown = JSON.parse(raw);
    return Array.isArray(keys) && keys.every((k) => typeof k === 'string') ? keys : null;
  } catch {
    return null;
  }
}
