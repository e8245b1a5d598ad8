// The requests accepted and not yet ended, per user and for the whole deployment, in Redis: what the gateway's
// in-flight caps count (a user's plan `maxInFlight`, seed 003's cap on concurrent work), and what a cancel is checked
// against before any Temporal call. The gateway admits a request into both sets atomically with the caps
// (lua/admit-live.lua) before starting its workflow, and takes it out again if the start fails; the control worker
// takes it out when the request's terminal event is first written.
//
// Keys, under the deployment prefix, share the `{live}` hash tag so that the script's keys are in one Redis Cluster
// slot: `{live}:user:<userId>` and `{live}:all`, sorted sets of workflow id -> accepted at (ms). An entry older than
// LIVE_MAX_AGE_MS is dropped as leaked (a terminal lost with Redis data): no request lives that long.
import type { RedisClient } from './redis';
import { luaScript } from './lua-scripts';

/** Longer than any request can live: 24 h in pending_safety plus the longest GPU wait and run. */
export const LIVE_MAX_AGE_MS = 26 * 3600_000;

export type LiveAdmission =
  | { readonly admitted: true; readonly userLive: number }
  | { readonly admitted: false; readonly over: 'user' | 'deployment'; readonly count: number };

interface AdmitLive {
  admitLive(
    userKey: string,
    allKey: string,
    member: string,
    now: number,
    pruneBefore: number,
    userMax: number,
    globalMax: number,
    ttlMs: number,
  ): Promise<[number, number]>;
}

/** The user in a workflow id `gen:<userId>:<requestId>` (user ids contain no `:`). */
export function userOfWorkflowId(workflowId: string): string | undefined {
  const match = /^gen:([^:]+):/.exec(workflowId);
  return match?.[1];
}

export class LiveRequests {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    if (!('admitLive' in redis))
      redis.defineCommand('admitLive', { numberOfKeys: 2, lua: luaScript('admit-live.lua') });
  }

  private userKey(userId: string): string {
    return `${this.prefix}{live}:user:${userId}`;
  }

  private get allKey(): string {
    return `${this.prefix}{live}:all`;
  }

  async admit(
    userId: string,
    workflowId: string,
    caps: { readonly user: number; readonly deployment: number },
    now = Date.now(),
  ): Promise<LiveAdmission> {
    const [verdict, count] = await (this.redis as unknown as AdmitLive).admitLive(
      this.userKey(userId),
      this.allKey,
      workflowId,
      now,
      now - LIVE_MAX_AGE_MS,
      caps.user,
      caps.deployment,
      LIVE_MAX_AGE_MS,
    );
    if (verdict === 0) return { admitted: true, userLive: count };
    return { admitted: false, over: verdict === 1 ? 'user' : 'deployment', count };
  }

  /** The request ended (or never started): it no longer counts. */
  async release(workflowId: string): Promise<void> {
    const userId = userOfWorkflowId(workflowId);
    if (userId === undefined) return;
    await this.redis.multi().zrem(this.userKey(userId), workflowId).zrem(this.allKey, workflowId).exec();
  }

  /** Whether the user has this request live. */
  async isLive(userId: string, workflowId: string): Promise<boolean> {
    return (await this.redis.zscore(this.userKey(userId), workflowId)) !== null;
  }

  /** Live requests of the whole deployment. */
  async total(now = Date.now()): Promise<number> {
    return this.redis.zcount(this.allKey, now - LIVE_MAX_AGE_MS, '+inf');
  }
}
