// An in-memory request event log with the Redis log's publish semantics (a dedupe key publishes at most once and
// returns the first sequence number), for activity tests that need no Redis.
import type { RequestEvent } from '../../core/events';
import type { RequestEventPublisher } from '../../runtime/event-log';

export class MemoryEventLog implements RequestEventPublisher {
  private readonly logs = new Map<string, { events: RequestEvent[]; dedupe: Map<string, number> }>();

  publish(logId: string, event: RequestEvent, dedupeKey?: string): Promise<number> {
    const log = this.logs.get(logId) ?? { events: [], dedupe: new Map<string, number>() };
    this.logs.set(logId, log);
    const seen = dedupeKey ? log.dedupe.get(dedupeKey) : undefined;
    if (seen !== undefined) return Promise.resolve(seen);
    log.events.push(event);
    if (dedupeKey) log.dedupe.set(dedupeKey, log.events.length);
    return Promise.resolve(log.events.length);
  }

  /** The events of one log, in publish order. */
  events(logId: string): RequestEvent[] {
    return [...(this.logs.get(logId)?.events ?? [])];
  }
}
