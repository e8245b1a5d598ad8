// The autoscaler simulation's event queue: a binary min-heap on (time, insertion order), so that events at the same
// millisecond run in the order they were scheduled and a run is reproducible. A day is ~5 million events per
// strategy; a sorted array or a linear scan would make the simulation minutes instead of seconds.

export interface SimEvent<P> {
  readonly atMs: number;
  readonly seq: number;
  readonly payload: P;
}

export class EventQueue<P> {
  private readonly heap: SimEvent<P>[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(atMs: number, payload: P): void {
    const heap = this.heap;
    heap.push({ atMs, seq: this.seq++, payload });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** The earliest event, removed; undefined when none is left. */
  pop(): SimEvent<P> | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && this.before(left, least)) least = left;
      if (right < heap.length && this.before(right, least)) least = right;
      if (least === i) break;
      this.swap(i, least);
      i = least;
    }
    return top;
  }

  private before(a: number, b: number): boolean {
    const x = this.heap[a] as SimEvent<P>;
    const y = this.heap[b] as SimEvent<P>;
    return x.atMs < y.atMs || (x.atMs === y.atMs && x.seq < y.seq);
  }

  private swap(a: number, b: number): void {
    const x = this.heap[a] as SimEvent<P>;
    this.heap[a] = this.heap[b] as SimEvent<P>;
    this.heap[b] = x;
  }
}
