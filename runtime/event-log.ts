// The per-request event log in Redis: activities and the gateway append events (accepted, status, progress,
// completed, failed); gateways follow the logs of the requests their clients submitted and deliver every event
// exactly once, in order. A stream keeps the log (so a client that reconnects, or a gateway that missed a pub/sub
// message, catches up); a pub/sub channel per request carries new events without polling.
//
// The log id is the workflow id (`gen:<user>:<requestId>`), which is unique across users.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { RequestEvent, SequencedEvent } from '../core/events';
import { DEFAULT_REDIS_PREFIX } from './redis';

export interface EventLogOptions {
  /** Prefix of every key and channel; tests use a unique one. @default 'atelier:' */
  readonly prefix?: string;
  /** Lifetime of a request's log after its last event, seconds. @default 86400 */
  readonly ttlSeconds?: number;
  /** Approximate cap on a log's length; progress events are the bulk of it. @default 2000 */
  readonly maxLength?: number;
}

interface PublishCommand {
  publishEvent3(
    seqKey: string,
    streamKey: string,
    dedupeKey: string,
    channel: string,
    eventJson: string,
    dedupe: string,
    ttl: number,
    maxLength: number,
  ): Promise<[number, number]>;
}

function luaScript(name: string): string {
  // From source (tsx) the scripts sit beside this file; from dist/runtime they are two levels up in runtime/lua.
  const candidates = [path.join(__dirname, 'lua', name), path.join(__dirname, '..', '..', 'runtime', 'lua', name)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`Lua script ${name} not found (looked in ${candidates.join(', ')})`);
  return readFileSync(found, 'utf8');
}

/** What activities need of a request event log: append an event, at most once per dedupe key. */
export interface RequestEventPublisher {
  publish(logId: string, event: RequestEvent, dedupeKey?: string): Promise<number>;
}

/** A publisher that also tells a new event from one whose dedupe key had been used already. */
export interface RequestEventAppender extends RequestEventPublisher {
  append(logId: string, event: RequestEvent, dedupeKey?: string): Promise<{ seq: number; published: boolean }>;
}

/**
 * The first events of every request's log, recorded by whoever starts its workflow (the gateway) before it starts:
 * `accepted` and the `queued` status then come first whatever the workflow's activities publish, and never twice
 * (a re-attach gets the original seq back). True when this call recorded `accepted`: a new request, not a
 * resubmission of one the log already has (the gateway times only new ones).
 */
export async function recordAccepted(eventLog: RequestEventAppender, workflowId: string): Promise<boolean> {
  const accepted = await eventLog.append(workflowId, { type: 'accepted', workflowId }, 'accepted');
  await eventLog.publish(workflowId, { type: 'status', status: 'queued' }, 'status:queued');
  return accepted.published;
}

export class RedisEventLog implements RequestEventAppender {
  readonly prefix: string;
  private readonly ttlSeconds: number;
  private readonly maxLength: number;

  constructor(
    private readonly redis: Redis,
    options: EventLogOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.ttlSeconds = options.ttlSeconds ?? 86_400;
    this.maxLength = options.maxLength ?? 2000;
    if (!('publishEvent3' in redis)) {
      redis.defineCommand('publishEvent3', { numberOfKeys: 3, lua: luaScript('publish-event-3.lua') });
    }
  }

  /** Keys are hash-tagged on the log id so that one request's keys share a Redis Cluster slot. */
  keys(logId: string): { seq: string; stream: string; dedupe: string; channel: string } {
    const base = `${this.prefix}req:{${logId}}`;
    return { seq: `${base}:seq`, stream: `${base}:events`, dedupe: `${base}:dedupe`, channel: `${base}:ch` };
  }

  /**
   * Appends an event and returns its sequence number. With a dedupe key the event is published at most once per
   * log: a retried activity or a replayed workflow gets the original sequence number back.
   */
  async publish(logId: string, event: RequestEvent, dedupeKey?: string): Promise<number> {
    return (await this.append(logId, event, dedupeKey)).seq;
  }

  /** `publish`, saying also whether the event was appended now (false: its dedupe key had been used). */
  async append(logId: string, event: RequestEvent, dedupeKey?: string): Promise<{ seq: number; published: boolean }> {
    const k = this.keys(logId);
    const [seq, published] = await (this.redis as unknown as PublishCommand).publishEvent3(
      k.seq,
      k.stream,
      k.dedupe,
      k.channel,
      JSON.stringify(event),
      dedupeKey ?? '',
      this.ttlSeconds,
      this.maxLength,
    );
    return { seq, published: published === 1 };
  }

  /** Events with seq > afterSeq, in order. */
  async read(logId: string, afterSeq: number): Promise<SequencedEvent[]> {
    const entries = await this.redis.xrange(this.keys(logId).stream, `${afterSeq + 1}-0`, '+');
    return entries.flatMap(([id, fields]) => {
      const json = fields[1];
      if (fields[0] !== 'e' || json === undefined) return [];
      return [{ ...(JSON.parse(json) as RequestEvent), seq: Number(id.split('-')[0]) }];
    });
  }

  /** A follower of request logs on a dedicated connection (pub/sub mode takes the connection over). */
  createSubscriber(subscriberRedis: Redis): EventSubscriber {
    return new EventSubscriber(this, subscriberRedis);
  }
}

type Deliver = (event: SequencedEvent) => void;

interface Follow {
  readonly logId: string;
  lastSeq: number;
  readonly deliver: Deliver;
  /** Set while a catch-up read is in flight; live messages wait behind it. */
  catchingUp: Promise<void> | null;
  pending: SequencedEvent[];
  closed: boolean;
}

/**
 * Delivers each followed log's events exactly once and in seq order, including those published before `follow`.
 * Live messages arrive by pub/sub; any gap (a message lost while the connection was down) is filled from the
 * stream, and every followed log is re-read after a reconnect.
 */
export class EventSubscriber {
  private readonly follows = new Map<string, Set<Follow>>();
  private readonly channelToLog = new Map<string, string>();

  constructor(
    private readonly log: RedisEventLog,
    private readonly sub: Redis,
  ) {
    sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    // ioredis re-subscribes on reconnect, but messages published meanwhile are gone: re-read every log.
    sub.on('ready', () => {
      for (const set of this.follows.values()) for (const f of set) this.catchUp(f);
    });
  }

  /** Starts delivering events with seq > afterSeq; resolves once subscribed. Returns the function that stops it. */
  async follow(logId: string, afterSeq: number, deliver: Deliver): Promise<() => Promise<void>> {
    const f: Follow = { logId, lastSeq: afterSeq, deliver, catchingUp: null, pending: [], closed: false };
    let set = this.follows.get(logId);
    if (!set) {
      set = new Set();
      this.follows.set(logId, set);
      const channel = this.log.keys(logId).channel;
      this.channelToLog.set(channel, logId);
      await this.sub.subscribe(channel);
    }
    set.add(f);
    // Subscribed first, then read: nothing published in between can be missed.
    this.catchUp(f);
    await f.catchingUp;
    return () => this.unfollow(f);
  }

  async close(): Promise<void> {
    this.follows.clear();
    this.channelToLog.clear();
    this.sub.disconnect();
  }

  private async unfollow(f: Follow): Promise<void> {
    f.closed = true;
    const set = this.follows.get(f.logId);
    if (!set) return;
    set.delete(f);
    if (set.size === 0) {
      this.follows.delete(f.logId);
      const channel = this.log.keys(f.logId).channel;
      this.channelToLog.delete(channel);
      await this.sub.unsubscribe(channel);
    }
  }

  private onMessage(channel: string, message: string): void {
    const logId = this.channelToLog.get(channel);
    if (logId === undefined) return;
    const bar = message.indexOf('|');
    const event = { ...(JSON.parse(message.slice(bar + 1)) as RequestEvent), seq: Number(message.slice(0, bar)) };
    for (const f of this.follows.get(logId) ?? []) {
      if (f.catchingUp) f.pending.push(event);
      else if (event.seq === f.lastSeq + 1) this.emit(f, event);
      else if (event.seq > f.lastSeq + 1) this.catchUp(f); // a gap: read the stream, which has it all
    }
  }

  private emit(f: Follow, event: SequencedEvent): void {
    if (f.closed || event.seq <= f.lastSeq) return;
    f.lastSeq = event.seq;
    f.deliver(event);
  }

  private catchUp(f: Follow): void {
    if (f.catchingUp || f.closed) return;
    const run = async (): Promise<void> => {
      // Retry transient read failures; the follower stays correct because pending messages are kept.
      for (let attempt = 0; ; attempt++) {
        try {
          const events = await this.log.read(f.logId, f.lastSeq);
          for (const e of events) this.emit(f, e);
          break;
        } catch (err) {
          if (f.closed || attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
        }
      }
      const pending = f.pending.sort((a, b) => a.seq - b.seq);
      f.pending = [];
      let gap = false;
      for (const e of pending) {
        if (e.seq === f.lastSeq + 1) this.emit(f, e);
        else if (e.seq > f.lastSeq + 1) gap = true;
      }
      f.catchingUp = null;
      if (gap) this.catchUp(f);
    };
    f.catchingUp = run().catch(() => {
      f.catchingUp = null;
    });
  }
}
