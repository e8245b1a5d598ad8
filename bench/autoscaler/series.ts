// Storage for the millions of requests a simulated day handles: a growable Float64Array per (fleet, tier) for the
// waits, with the nearest-rank percentile and the share under a bound computed on a sorted copy (plain arrays would
// hold 2.7 million boxed values per strategy; typed arrays keep a full day at ~20 MB and sort in milliseconds), and
// the FIFO the waiting requests stand in (Array.shift is O(n) on a queue thousands deep).

export class Series {
  private data = new Float64Array(1024);
  private n = 0;

  get length(): number {
    return this.n;
  }

  push(value: number): void {
    if (this.n === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.n++] = value;
  }

  values(): Float64Array {
    return this.data.subarray(0, this.n);
  }
}

/** Every value of several series, sorted ascending. */
export function sortedValues(series: readonly Series[]): Float64Array {
  const out = new Float64Array(series.reduce((s, x) => s + x.length, 0));
  let at = 0;
  for (const s of series) {
    out.set(s.values(), at);
    at += s.length;
  }
  return out.sort();
}

/** Nearest-rank percentile (p in 0..100) of sorted values; null for none. */
export function percentileOfSorted(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? null;
}

/** Share of sorted values strictly under `bound`; null for none. */
export function shareBelow(sorted: Float64Array, bound: number): number | null {
  if (sorted.length === 0) return null;
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo / sorted.length;
}

/** A FIFO with O(1) push and shift (an index into an array, compacted now and then). */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
