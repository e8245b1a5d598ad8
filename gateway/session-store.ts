// Connection sessions in Redis: which user is connected through which gateway instance since when. Operators
// and other instances read them (e.g. to count a user's connections); the TTL makes a crashed gateway's sessions
// disappear on their own, and every heartbeat pong pushes it back.
import type { RedisClient } from '../runtime/redis';

export interface SessionRecord {
  readonly connectionId: string;
  readonly userId: string;
  readonly gatewayId: string;
  /** ms since epoch */
  readonly connectedAt: number;
}

export class RedisSessionStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    /** Lifetime of a session without heartbeats, seconds. */
    private readonly ttlSeconds: number,
  ) {}

  key(connectionId: string): string {
    return `${this.prefix}session:${connectionId}`;
  }

  async create(session: SessionRecord): Promise<void> {
    const key = this.key(session.connectionId);
    await this.redis
      .multi()
      .hset(key, { userId: session.userId, gatewayId: session.gatewayId, connectedAt: String(session.connectedAt) })
      .expire(key, this.ttlSeconds)
      .exec();
  }

  /** Extends the session's lifetime; called on every pong. */
  async refresh(connectionId: string): Promise<void> {
    await this.redis.expire(this.key(connectionId), this.ttlSeconds);
  }

  async delete(connectionId: string): Promise<void> {
    await this.redis.del(this.key(connectionId));
  }

  async get(connectionId: string): Promise<SessionRecord | null> {
    const h = await this.redis.hgetall(this.key(connectionId));
    if (h.userId === undefined || h.gatewayId === undefined || h.connectedAt === undefined) return null;
    return { connectionId, userId: h.userId, gatewayId: h.gatewayId, connectedAt: Number(h.connectedAt) };
  }
}
