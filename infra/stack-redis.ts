// The local stack's Redis: reuse one that answers, or start one with append-only persistence under the data dir.
// Chaos tests crash it (SIGKILL: whatever the append-only file had not synced is gone, as in a real crash) and start
// it again on the same port and data, while the stack's processes keep running and must ride it out.
import path from 'node:path';
import { ensureRedis, type RedisHandle } from './redis-server';
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
