// Dynamic batching: images waiting for the same kind of pass (same model, size, steps, guidance and scheduler) are
// grouped; a group is dispatched as one pass when it reaches its model's batch cap or when its oldest image has
// waited `maxQueueDelayMs`, whichever comes first, and only when an inference thread is free. While every thread is
// busy, groups keep growing, so batches get bigger exactly when the backend is loaded.

/** What must match for images to share a pass. */
export interface BatchKey {
  readonly model: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
  readonly scheduler: string;
  /** Set for a request that runs alone, one image per pass (a retry after an out-of-memory): its own group. */
  readonly solo?: string;
}

export function batchKeyString(k: BatchKey): string {
  const shared = `${k.model}|${k.width}x${k.height}|${k.steps}|${k.guidanceScale}|${k.scheduler}`;
  return k.solo === undefined ? shared : `${shared}|solo:${k.solo}`;
}

/** Most images of one pass for a group: 1 for a solo request, else the model's current cap. */
function groupCap(key: BatchKey, capFor: (model: string) => number): number {
  return key.solo === undefined ? capFor(key.model) : 1;
}

interface QueuedMember<M> {
  readonly member: M;
  /** When it became eligible: enqueue time, or 0 for a retry that should go out at once. */
  readonly since: number;
}

interface Group<M> {
  readonly key: BatchKey;
  readonly queue: QueuedMember<M>[];
  timer: NodeJS.Timeout | undefined;
}

export interface DynamicBatcherOptions<M> {
  /** How long the first image of a group waits for company, ms. @default 10 */
  readonly maxQueueDelayMs: number;
  /** Images per pass for a model right now (its configured cap, halved after out-of-memory failures). */
  readonly capFor: (model: string) => number;
  /** Starts a pass; returns false when no inference thread is free (the members stay queued). */
  readonly dispatch: (key: BatchKey, members: M[]) => boolean;
  readonly now?: () => number;
}

export class DynamicBatcher<M> {
  private readonly groups = new Map<string, Group<M>>();
  private readonly now: () => number;
  private pumping = false;

  constructor(private readonly options: DynamicBatcherOptions<M>) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Images waiting for a pass, all groups. */
  get queued(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.queue.length;
    return n;
  }

  /**
   * Queues members (one per image). `urgent` puts them at the front, eligible at once: members of a pass that failed
   * with out-of-memory go back out, in their original order, as smaller passes.
   */
  enqueue(key: BatchKey, members: readonly M[], urgent = false): void {
    const id = batchKeyString(key);
    let group = this.groups.get(id);
    if (!group) {
      group = { key, queue: [], timer: undefined };
      this.groups.set(id, group);
    }
    const since = urgent ? 0 : this.now();
    const entries = members.map((member) => ({ member, since }));
    if (urgent) group.queue.unshift(...entries);
    else group.queue.push(...entries);
    this.pump();
    this.arm(id, group);
  }

  /** Removes and returns the queued members that match (a cancelled or failed request's images). */
  remove(match: (member: M) => boolean): M[] {
    const removed: M[] = [];
    for (const [id, group] of this.groups) {
      for (let i = group.queue.length - 1; i >= 0; i--) {
        const entry = group.queue[i] as QueuedMember<M>;
        if (match(entry.member)) {
          removed.unshift(entry.member);
          group.queue.splice(i, 1);
        }
      }
      if (group.queue.length === 0) this.drop(id, group);
    }
    return removed;
  }

  /**
   * Dispatches every group that is ready, oldest first, while threads accept passes. Returns true when it stopped
   * because no thread was free (a finishing pass pumps again), false when nothing more was ready.
   */
  pump(): boolean {
    if (this.pumping) return false;
    this.pumping = true;
    try {
      for (;;) {
        const now = this.now();
        let best: [string, Group<M>] | undefined;
        for (const entry of this.groups) {
          const [, g] = entry;
          const head = g.queue[0];
          if (!head) continue;
          const ready =
            g.queue.length >= groupCap(g.key, this.options.capFor) || now - head.since >= this.options.maxQueueDelayMs;
          if (ready && (!best || head.since < (best[1].queue[0] as QueuedMember<M>).since)) best = entry;
        }
        if (!best) return false;
        const [id, group] = best;
        const taken = group.queue.splice(0, Math.max(1, groupCap(group.key, this.options.capFor)));
        if (
          !this.options.dispatch(
            group.key,
            taken.map((t) => t.member),
          )
        ) {
          group.queue.unshift(...taken);
          return true;
        }
        if (group.queue.length === 0) this.drop(id, group);
        else this.arm(id, group);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Clears every queue and timer and returns what was queued (backend shutdown). */
  clear(): M[] {
    const all: M[] = [];
    for (const [id, group] of this.groups) {
      all.push(...group.queue.map((q) => q.member));
      this.drop(id, group);
    }
    return all;
  }

  /**
   * Wakes the pump when the group's oldest member reaches the queue delay. A timer can fire a little before that by
   * the batcher's clock (timers keep whole milliseconds), so unless the pump stopped for want of a free thread (a
   * finishing pass pumps again), a group still queued is armed again: it must never be left waiting for nothing.
   */
  private arm(id: string, group: Group<M>): void {
    if (group.timer || group.queue.length === 0) return;
    const head = group.queue[0] as QueuedMember<M>;
    const wait = Math.max(1, Math.ceil(this.options.maxQueueDelayMs - (this.now() - head.since)));
    group.timer = setTimeout(() => {
      group.timer = undefined;
      const refused = this.pump();
      if (!refused && this.groups.get(id) === group) this.arm(id, group);
    }, wait);
  }

  private drop(id: string, group: Group<M>): void {
    if (group.timer) clearTimeout(group.timer);
    group.timer = undefined;
    this.groups.delete(id);
  }
}
