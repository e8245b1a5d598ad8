// The local stack's Redis: reuse one that answers, or start one with append-only persistence under the data dir.
// Chaos tests crash it (SIGKILL: whatever the append-only file had not synced is gone, as in a real crash) and start
// it again on the same port and data, while the stack's processes keep running and must ride it out.
// A Redis Cluster URL (`redis+cluster://...`) is only ever attached to: its launcher (infra/redis-cluster.ts) or its
// operator runs it, and a single redis-server started in its place would be the wrong kind of Redis.
import path from 'node:path';
import type { Logger } from '../runtime/logger';
import { isRedisClusterUrl, parseRedisClusterUrl, redactClusterUrl } from '../runtime/redis';
import { ensureRedis, redisAnswers, RedisStartError, type RedisHandle } from './redis-server';
import type { LaunchContext } from './stack-context';
import type { StackOptions } from './stack-options';

export class StackRedis {
  private handle: RedisHandle | undefined;

  constructor(
    private readonly options: StackOptions,
    private readonly dataDir: string,
    private readonly ctx: LaunchContext,
  ) {}

  /** True when the stack started this Redis (and so may stop, crash and restart it). */
  get started(): boolean {
    return this.handle?.started === true;
  }

  get pid(): number | undefined {
    const child = this.handle?.process;
    return child && !child.hasExited ? child.process.pid : undefined;
  }

  async start(): Promise<void> {
    if (isRedisClusterUrl(this.options.redisUrl)) {
      this.handle = await attachRedisCluster(this.options.redisUrl, this.ctx.log);
      return;
    }
    this.handle = await ensureRedis({
      url: this.options.redisUrl,
      dataDir: path.join(this.dataDir, 'redis'),
      log: this.ctx.log,
      onOutput: (line) => this.ctx.onOutput('redis', line),
    });
  }

  /** SIGKILLs our redis-server and waits for it to be gone. Throws for a Redis the stack did not start. */
  async crash(): Promise<void> {
    const child = this.handle?.started ? this.handle.process : undefined;
    if (!child) throw new Error('This stack uses an existing Redis, which it cannot crash or restart');
    child.process.kill('SIGKILL');
    await child.exited;
  }

  async stop(): Promise<void> {
    if (!this.handle?.started) return;
    this.ctx.log.info({ service: 'redis' }, 'stopping redis');
    await this.handle.stop();
    this.ctx.log.info({ service: 'redis' }, 'redis stopped');
  }
}

/**
 * The Redis Cluster at `url`, when at least one of its seed nodes answers PING (the client learns the others from it);
 * a seed that does not answer is logged. Throws {@link RedisStartError} when none does.
 */
export async function attachRedisCluster(url: string, log: Logger): Promise<RedisHandle> {
  const { nodes, username, password } = parseRedisClusterUrl(url);
  const login = password === undefined ? '' : `${encodeURIComponent(username ?? '')}:${encodeURIComponent(password)}@`;
  const answers = await Promise.all(
    nodes.map(({ host, port }) => redisAnswers(`redis://${login}${host.includes(':') ? `[${host}]` : host}:${port}`)),
  );
  const silent = nodes.filter((_, i) => !answers[i]).map(({ host, port }) => `${host}:${port}`);
  if (silent.length === nodes.length) {
    throw new RedisStartError(
      `No Redis Cluster node answers at ${redactClusterUrl(url)}; Atelier attaches to a Redis Cluster but never starts one in its place.`,
    );
  }
  if (silent.length > 0) log.warn({ silent }, 'some Redis Cluster seed nodes do not answer; using the others');
  log.info({ url: redactClusterUrl(url) }, 'using the Redis Cluster that answers at REDIS_URL');
  return { url, started: false, process: undefined, stop: () => Promise.resolve() };
}
