// Catches a deployment whose processes disagree on ATELIER_REDIS_PREFIX. Workers publish request events under
// their prefix and gateways read them under theirs; if the two differ, every request goes silent after `accepted`
// and nothing else says why. So each process announces its role under its own prefix, and registers the prefix in
// one key that every prefix shares; a process that finds the roles it talks to only under other prefixes reports
// it, naming the prefixes, in its logs and its readiness.
import type { Logger } from './logger';
import type { RedisClient } from './redis';

export type DeploymentRole = 'gateway' | 'control-worker' | 'gpu-worker';

/** The roles whose events a role reads or whose readers it writes for. */
export const PEER_ROLES: Readonly<Record<DeploymentRole, readonly DeploymentRole[]>> = {
  gateway: ['control-worker'],
  'control-worker': ['gateway'],
  'gpu-worker': ['gateway'],
};

/** The one key outside every prefix: a sorted set of the prefixes in use, scored by when they were last announced. */
export const PREFIX_REGISTRY_KEY = 'atelier-deployment-prefixes';

export type PrefixAgreementStatus =
  | { readonly state: 'agreed' | 'waiting'; readonly prefix: string }
  | { readonly state: 'mismatch'; readonly prefix: string; readonly problem: string };

export interface PrefixAgreementOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly role: DeploymentRole;
  readonly log: Logger;
  /** How often the process announces itself and checks its peers, ms. @default 15000 */
  readonly intervalMs?: number;
}

/** Recheck interval while the peers have not announced themselves yet, ms. */
const WAITING_RECHECK_MS = 2_000;

export function roleKey(prefix: string, role: DeploymentRole): string {
  return `${prefix}deployment:role:${role}`;
}

/**
 * Announces `role` under `prefix` and checks, at start and then every `intervalMs`, that the roles it works with
 * announce themselves under the same prefix. An announcement lives three intervals, so a stopped process stops
 * counting within a minute or so.
 */
export class PrefixAgreement {
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private current: PrefixAgreementStatus;
  private reported: string | undefined;
  private stopped = false;
  private started = false;

  constructor(private readonly options: PrefixAgreementOptions) {
    this.intervalMs = options.intervalMs ?? 15_000;
    this.current = { state: 'waiting', prefix: options.prefix };
  }

  get status(): PrefixAgreementStatus {
    return this.current;
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const tick = (): void => {
      this.check()
        .catch((err: unknown) => this.options.log.debug({ err }, 'Redis prefix check failed; retrying'))
        .finally(() => {
          if (this.stopped) return;
          // While peers are still starting, look again soon, so a mismatch shows within seconds of their start.
          const delay =
            this.current.state === 'waiting' ? Math.min(WAITING_RECHECK_MS, this.intervalMs) : this.intervalMs;
          this.timer = setTimeout(tick, delay);
          this.timer.unref();
        });
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One announce-and-check round; also what start() runs on its timer. */
  async check(): Promise<PrefixAgreementStatus> {
    const { redis, prefix, role } = this.options;
    const now = Date.now();
    const ttlMs = 3 * this.intervalMs;
    // Separate commands, not MULTI: the keys live in different Redis Cluster slots.
    await Promise.all([
      redis.set(roleKey(prefix, role), String(now), 'PX', ttlMs),
      redis.zadd(PREFIX_REGISTRY_KEY, now, prefix),
      redis.zremrangebyscore(PREFIX_REGISTRY_KEY, '-inf', now - ttlMs),
    ]);
    const others = (await redis.zrangebyscore(PREFIX_REGISTRY_KEY, now - ttlMs, '+inf')).filter((p) => p !== prefix);
    const problems: string[] = [];
    let waiting = false;
    for (const peer of PEER_ROLES[role]) {
      if ((await redis.exists(roleKey(prefix, peer))) === 1) continue;
      const elsewhere: string[] = [];
      for (const other of others) if ((await redis.exists(roleKey(other, peer))) === 1) elsewhere.push(other);
      if (elsewhere.length === 0) {
        waiting = true;
        continue;
      }
      problems.push(
        `this ${role} uses ATELIER_REDIS_PREFIX=${JSON.stringify(prefix)}, but no ${peer} does: ` +
          `${peer}s run with ${elsewhere.map((p) => JSON.stringify(p)).join(', ')}. Request events written under one prefix ` +
          'are never read under the other; set the same ATELIER_REDIS_PREFIX on every process of the deployment.',
      );
    }
    this.current =
      problems.length > 0
        ? { state: 'mismatch', prefix, problem: problems.join(' ') }
        : { state: waiting ? 'waiting' : 'agreed', prefix };
    this.report();
    return this.current;
  }

  private report(): void {
    const problem = this.current.state === 'mismatch' ? this.current.problem : undefined;
    if (problem === this.reported) return;
    if (problem) this.options.log.error({ redisPrefix: this.options.prefix }, `Redis prefix mismatch: ${problem}`);
    else if (this.reported)
      this.options.log.info({ redisPrefix: this.options.prefix }, 'Redis prefix mismatch resolved');
    this.reported = problem;
  }
}
