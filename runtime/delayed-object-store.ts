// Fault injection for chaos experiments (seed 001 `storage_latency`): an ObjectStore that adds a fixed delay to every
// operation of the store it wraps, as a slow S3 region would. On only when ATELIER_CHAOS_STORAGE_LATENCY_MS is set;
// every process that touches the store (gateway, control worker, GPU workers) honours it.
import type { Readable } from 'node:stream';
import type { ObjectInfo, ObjectStore } from './object-store';

export class DelayedObjectStore implements ObjectStore {
  constructor(
    private readonly inner: ObjectStore,
    private readonly delayMs: number,
  ) {}

  private async delayed<T>(operation: () => Promise<T>): Promise<T> {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return operation();
  }

  put(key: string, body: Buffer, metadata?: Record<string, string>, contentType?: string): Promise<ObjectInfo> {
    return this.delayed(() => this.inner.put(key, body, metadata, contentType));
  }

  get(key: string): Promise<{ body: Buffer; info: ObjectInfo } | null> {
    return this.delayed(() => this.inner.get(key));
  }

  /** Delays the opening, as a slow region delays the first byte; the bytes then flow at the inner store's pace. */
  getStream(key: string): Promise<{ body: Readable; info: ObjectInfo } | null> {
    return this.delayed(() => this.inner.getStream(key));
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.delayed(() => this.inner.head(key));
  }

  delete(key: string): Promise<void> {
    return this.delayed(() => this.inner.delete(key));
  }
}

/** The store itself, or the store behind the chaos delay when one is configured. */
export function withInjectedLatency(store: ObjectStore, latencyMs: number): ObjectStore {
  return latencyMs > 0 ? new DelayedObjectStore(store, latencyMs) : store;
}
