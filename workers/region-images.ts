// The control worker's side of images across regions (issue 12): its region's store and its peers' for the storage
// activity (runtime/region-stores.ts), the announcement of each stored request to the peers, and the replicator that
// copies the peers' images into this region's store (runtime/image-replication.ts), with its metrics:
// `atelier_image_replications_total{origin, outcome}` and `atelier_image_replication_lag_seconds{origin}`.
import os from 'node:os';
import type { RedisClient } from '../runtime/redis';
import type { Registry } from 'prom-client';
import type { StorageDeps } from '../activities/storage';
import { ImageReplicator, ReplicationLog } from '../runtime/image-replication';
import type { Logger } from '../runtime/logger';
import { atelierCounter, atelierHistogram } from '../runtime/metrics';
import { createRedis } from '../runtime/redis';
import { openRegionStores } from '../runtime/region-stores';
import type { SharedOptions } from '../runtime/shared-options';

/** Announcement to copy: seconds, from a local disk copy (milliseconds) to a peer that was away for minutes. */
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
/** How long one replicator read waits for announcements, ms. */
const BLOCK_MS = 2_000;

export interface RegionImages {
  /** The storage activity's stores and its announcement to the peers. */
  readonly storage: Pick<StorageDeps, 'store' | 'stagedIn' | 'replicate'>;
  /** Running when the region has peers; stopped with the worker. */
  readonly replicator: ImageReplicator | undefined;
}

export function startRegionImages(
  options: Pick<
    SharedOptions,
    | 'region'
    | 'storageDir'
    | 'peerStorage'
    | 'chaosStorageLatencyMs'
    | 'redisUrl'
    | 'redisPrefix'
    | 'redisCommandTimeoutMs'
  >,
  redis: RedisClient,
  registry: Registry,
  log: Logger,
): RegionImages {
  const stores = openRegionStores(options);
  const peers = stores.peers.map((p) => p.region);
  const storage: RegionImages['storage'] = {
    store: stores.own,
    stagedIn: (region) => stores.storeOf(region),
    ...(peers.length > 0
      ? { replicate: (keys) => new ReplicationLog(redis, options.redisPrefix, peers).announce(options.region, keys) }
      : {}),
  };
  if (peers.length === 0) return { storage, replicator: undefined };

  const outcomes = atelierCounter<'origin' | 'outcome'>(registry, {
    name: 'atelier_image_replications_total',
    help: "Requests' images copied into this region from their origin region's store, by outcome (copied, failed, skipped)",
    labelNames: ['origin', 'outcome'],
  });
  const lag = atelierHistogram<'origin'>(registry, {
    name: 'atelier_image_replication_lag_seconds',
    help: 'From a request stored in its origin region to its images copied into this one, seconds',
    labelNames: ['origin'],
    buckets: LAG_BUCKETS,
  });
  for (const origin of peers)
    for (const outcome of ['copied', 'failed', 'skipped']) outcomes.inc({ origin, outcome }, 0);
  const replicator = new ImageReplicator({
    // Its own connection: it blocks on reads, which must outlast them.
    redis: createRedis(options.redisUrl, 'image-replicator', options.redisCommandTimeoutMs + BLOCK_MS),
    prefix: options.redisPrefix,
    stores,
    consumer: `${os.hostname()}:${process.pid}`,
    log: log.child({ component: 'image-replicator' }),
    blockMs: BLOCK_MS,
    onOutcome: ({ origin, outcome, lagSeconds }) => {
      outcomes.inc({ origin, outcome });
      if (lagSeconds !== undefined) lag.observe({ origin }, lagSeconds);
    },
  });
  replicator.start();
  log.info({ peers }, 'replicating the images of the peer regions into this region');
  return { storage, replicator };
}
