// The per-request event log in Redis: activities and the gateway append events (accepted, status, progress,
// completed, failed); gateways follow the logs of the requests their clients submitted and deliver every event
// exactly once, in order. A stream keeps the log (so a client that reconnects, or a gateway that missed a pub/sub
// message, catches up); a pub/sub channel per request carries new events without polling.
//
// The log id is the workflow id (`gen:<user>:<requestId>`), which is unique across users.
import type { RequestEstimate } from '../core/estimate';
import { isTerminalEvent, type RequestEvent, type SequencedEvent } from '../core/events';
import { luaScript } from './lua-scripts';
import { Cluster, DEFAULT_REDIS_PREFIX, type RedisClient } from './redis';

export interface EventLogOptions {
  /** Prefix of every key and channel; tests use a unique one. @default 'atelier:' */
  readonly prefix?: string;
  /**
   * Lifetime of a running request's log after its latest event, seconds. It must outlast the longest silence of a
   * live workflow: a request parks up to 24 h in pending_safety without an event. @default 259200 (72 h)
   */
  readonly activeTtlSeconds?: number;
  /** Lifetime of a log once its terminal event is in: the window in which a client can re-attach. @default 86400 */
  readonly endedTtlSeconds?: number;
  /**
   * Most progress events a log keeps; older ones are removed as new ones come, and all but the newest once the
   * request has ended. Status and terminal events are never removed. @default 2000
   */
  readonly maxProgressEvents?: number;
}

/** Defaults of EventLogOptions. */
export const EVENT_LOG_DEFAULTS = {
  activeTtlSeconds: 72 * 3600,
  endedTtlSeconds: 24 * 3600,
  maxProgressEvents: 2000,
} as const;

/** How the publish script treats an event: see runtime/lua/publish-event-4.lua. */
type EventKind = 'accepted' | 'progress' | 'terminal' | 'status';

function eventKind(event: RequestEvent): EventKind {
  if (event.type === 'accepted' || event.type === 'progress') return event.type;
  return isTerminalEvent(event) ? 'terminal' : 'status';
}

interface PublishCommand {
  publishEvent4(
    seqKey: string,
    streamKey: string,
    dedupeKey: string,
    progressKey: string,
    channel: string,
    eventJson: string,
    dedupe: string,
    kind: EventKind,
    activeTtl: number,
    endedTtl: number,
    maxProgress: number,
  ): Promise<[number, number]>;
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
 * (a re-attach gets the original seq back, and the estimate the request was accepted with). True when this call
 * recorded `accepted`: a new request, not a resubmission of one the log already has (the gateway times only new ones).
 */
export async function recordAccepted(
  eventLog: RequestEventAppender,
  workflowId: string,
  estimate?: RequestEstimate,
  placement?: { readonly region: string; readonly degraded: boolean },
): Promise<boolean> {
  const event: RequestEvent = { type: 'accepted', workflowId, ...(estimate ? { estimate } : {}) };
  const accepted = await eventLog.append(workflowId, event, 'accepted');
  // `queued` says where the request waits, and whether that is not where its client asked (seed 001: "notify users
  // of potential delays").
  const where = placement ? { region: placement.region, ...(placement.degraded ? { degraded: true } : {}) } : {};
  await eventLog.publish(workflowId, { type: 'status', status: 'queued', ...where }, 'status:queued');
  return accepted.published;
}

export class RedisEventLog implements RequestEventAppender {
  readonly prefix: string;
  private readonly settings: Required<Omit<EventLogOptions, 'prefix'>>;

  constructor(
    private readonly redis: RedisClient,
    options: EventLogOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.settings = {
      activeTtlSeconds: options.activeTtlSeconds ?? EVENT_LOG_DEFAULTS.activeTtlSeconds,
      endedTtlSeconds: options.endedTtlSeconds ?? EVENT_LOG_DEFAULTS.endedTtlSeconds,
      maxProgressEvents: options.maxProgressEvents ?? EVENT_LOG_DEFAULTS.maxProgressEvents,
    };
    if (!('publishEvent4' in redis)) {
      redis.defineCommand('publishEvent4', { numberOfKeys: 4, lua: luaScript('publish-event-4.lua') });
    }
  }

  /** Keys are hash-tagged on the log id so that one request's keys share a Redis Cluster slot. */
  keys(logId: string): { seq: string; stream: string; dedupe: string; progress: string; channel: string } {
    const base = `${this.prefix}req:{${logId}}`;
    return {
      seq: `${base}:seq`,
      stream: `${base}:events`,
      dedupe: `${base}:dedupe`,
      progress: `${base}:progress`,
      channel: `${base}:ch`,
    };
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
    const { activeTtlSeconds, endedTtlSeconds, maxProgressEvents } = this.settings;
    const [seq, published] = await (this.redis as unknown as PublishCommand).publishEvent4(
      k.seq,
      k.stream,
      k.dedupe,
      k.progress,
      k.channel,
      JSON.stringify(event),
      dedupeKey ?? '',
      eventKind(event),
      activeTtlSeconds,
      endedTtlSeconds,
      maxProgressEvents,
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

  /** Seq of the log's newest entry; undefined for a log with none. */
  async newestSeq(logId: string): Promise<number | undefined> {
    const [newest] = await this.redis.xrevrange(this.keys(logId).stream, '+', '-', 'COUNT', 1);
    return newest === undefined ? undefined : Number(newest[0].split('-')[0]);
  }

  /** A follower of request logs on a dedicated connection (pub/sub mode takes the connection over). */
  createSubscriber(subscriberRedis: RedisClient): EventSubscriber {
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
  /** A message numbered at or below lastSeq arrived: on the next read, check whether the log began again. */
  sawLower: boolean;
  closed: boolean;
}

/**
 * How often a subscriber on a Redis Cluster re-reads every followed log. A Cluster client moves its subscription to
 * another node when that node's connection ends, without a `ready` event, so messages published during the move are
 * lost with nothing to say so until the log's next message; a terminal one would leave its client waiting. The sweep
 * bounds that to a few seconds, at one stream read per followed log per sweep.
 */
export const CLUSTER_SWEEP_MS = 5_000;

/**
 * Delivers each followed log's events exactly once and in seq order, including those published before `follow`.
 * Live messages arrive by pub/sub; any gap (a message lost while the connection was down) is filled from the
 * stream, every followed log is re-read after a reconnect, and on a Redis Cluster every `sweepMs` as well.
 */
export class EventSubscriber {
  private readonly follows = new Map<string, Set<Follow>>();
  private readonly channelToLog = new Map<string, string>();
  /** The SUBSCRIBE of each followed log, in flight or done. */
  private readonly subscriptions = new Map<string, Promise<void>>();

  private readonly sweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: RedisEventLog,
    private readonly sub: RedisClient,
    /** Re-read every followed log this often, ms; 0: never. @default CLUSTER_SWEEP_MS on a Cluster, else 0 */
    sweepMs: number = sub instanceof Cluster ? CLUSTER_SWEEP_MS : 0,
  ) {
    sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    // ioredis re-subscribes on reconnect, but messages published meanwhile are gone: re-read every log.
    sub.on('ready', () => this.catchUpAll());
    if (sweepMs > 0) {
      this.sweep = setInterval(() => this.catchUpAll(), sweepMs);
      this.sweep.unref();
    }
  }

  private catchUpAll(): void {
    for (const set of this.follows.values()) for (const f of set) this.catchUp(f);
  }

  /** Starts delivering events with seq > afterSeq; resolves once subscribed. Returns the function that stops it. */
  async follow(logId: string, afterSeq: number, deliver: Deliver): Promise<() => Promise<void>> {
    const f: Follow = {
      logId,
      lastSeq: afterSeq,
      deliver,
      catchingUp: null,
      pending: [],
      sawLower: false,
      closed: false,
    };
    let set = this.follows.get(logId);
    if (!set) {
      set = new Set();
      this.follows.set(logId, set);
      this.channelToLog.set(this.log.keys(logId).channel, logId);
    }
    set.add(f);
    try {
      // Every follow waits for the subscription, so none reads before it could hear what comes after the read.
      await this.subscribed(logId);
    } catch (err) {
      // Leave nothing behind: a later follow of this log must subscribe afresh, not trust a failed subscription.
      await this.unfollow(f);
      throw err;
    }
    // Subscribed first, then read: nothing published in between can be missed.
    this.catchUp(f);
    await f.catchingUp;
    return () => this.unfollow(f);
  }

  /** Subscribes to a log's channel once for all its follows; a failed attempt is forgotten so the next one retries. */
  private subscribed(logId: string): Promise<void> {
    let pending = this.subscriptions.get(logId);
    if (!pending) {
      pending = this.sub.subscribe(this.log.keys(logId).channel).then(() => undefined);
      this.subscriptions.set(logId, pending);
      pending.catch(() => {
        if (this.subscriptions.get(logId) === pending) this.subscriptions.delete(logId);
      });
    }
    return pending;
  }

  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    this.follows.clear();
    this.channelToLog.clear();
    this.subscriptions.clear();
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
      const subscription = this.subscriptions.get(f.logId);
      this.subscriptions.delete(f.logId);
      // Only a subscription that took effect needs undoing.
      if (
        subscription &&
        (await subscription.then(
          () => true,
          () => false,
        ))
      )
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
      else if (event.seq <= f.lastSeq) {
        f.sawLower = true;
        this.catchUp(f);
      }
      // A gap (a lost message, or progress entries trimmed): read the stream, which has it all.
      else this.catchUp(f);
    }
  }

  private emit(f: Follow, event: SequencedEvent): void {
    if (f.closed || event.seq <= f.lastSeq) return;
    f.lastSeq = event.seq;
    f.deliver(event);
  }

  /**
   * What the stream has after lastSeq. After a message numbered at or below lastSeq, also whether the log began
   * again below what was delivered (its numbering restarted at 1, a resubmission after the log was lost): then the
   * whole new log is delivered rather than dropped as seen. A message that merely crossed a read changes nothing.
   */
  private async readNew(f: Follow): Promise<SequencedEvent[]> {
    const sawLower = f.sawLower;
    f.sawLower = false;
    const events = await this.log.read(f.logId, f.lastSeq);
    if (events.length > 0 || !sawLower) return events;
    const newest = await this.log.newestSeq(f.logId);
    if (newest === undefined || newest >= f.lastSeq) return [];
    f.lastSeq = 0;
    return this.log.read(f.logId, 0);
  }

  private catchUp(f: Follow): void {
    if (f.catchingUp || f.closed) return;
    const run = async (): Promise<void> => {
      // Retry transient read failures; the follower stays correct because pending messages are kept.
      for (let attempt = 0; ; attempt++) {
        try {
          const events = await this.readNew(f);
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
        else f.sawLower = true; // mostly a message that crossed the read; readNew tells a log that began again
      }
      f.catchingUp = null;
      if (gap || f.sawLower) this.catchUp(f);
    };
    f.catchingUp = run().catch(() => {
      f.catchingUp = null;
    });
  }
}
