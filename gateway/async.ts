// Bounded waits for the gateway's readiness checks and shutdown (shutdown must finish even when a peer, Redis or
// Temporal never answers, so every wait there has a deadline), and the short cache of readings shared by requests.

/** Rejects if `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once all `promises` have settled or `ms` have passed, whichever comes first; never rejects. */
export async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(promises), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * `read(key)` answered from memory for `ttlMs` after each call that reached it: a burst of requests costs one read per
 * key and period, not one per request. A failed read is cached as failed for the same period.
 */
export function cachedFor<K, V>(ttlMs: number, read: (key: K) => Promise<V>): (key: K) => Promise<V> {
  const entries = new Map<K, { at: number; value: Promise<V> }>();
  return (key) => {
    const now = Date.now();
    let entry = entries.get(key);
    if (!entry || now - entry.at >= ttlMs) {
      entry = { at: now, value: read(key) };
      entries.set(key, entry);
    }
    return entry.value;
  };
}
