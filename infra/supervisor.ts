// Keeps one child service of the local stack running: restarts it with back-off when it fails (a crash, a signal, a
// non-zero exit such as a GPU worker's restart after a GPU error), never while it is being stopped. A clean exit (code
// 0) that nobody here asked for is a drain an operator ordered: the service stays down, as a drained Kubernetes pod
// of a scaled-down Deployment would. The launcher (infra/stack.ts) runs one per process: Temporal, workers, the gateway.
import type { Logger } from '../runtime/logger';
import type { ProcessExit } from './processes';

/** A running process that the supervisor can stop, and whose exit it watches. */
export interface RunningService {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  stop(): Promise<void>;
  signal(signal: NodeJS.Signals): void;
}

/**
 * Keeps one service running: restarts it with exponential backoff (0.5 s doubling to 30 s, reset after a
 * minute of uptime) when it exits on its own, and never while it is being stopped.
 */
export class Supervisor {
  private running: RunningService | undefined;
  private wanted = false;
  private consecutiveFailures = 0;
  private restartTimer: NodeJS.Timeout | undefined;

  /** Called after every (re)start, e.g. to record the new pid. */
  onLaunched: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly launch: () => Promise<RunningService>,
    private readonly log: Logger,
  ) {}

  get pid(): number | undefined {
    return this.running?.pid;
  }

  /** First start: a failure here is the caller's error, not something to retry. */
  async start(): Promise<void> {
    this.wanted = true;
    await this.launchOnce();
  }

  async stop(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.restartTimer);
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    this.log.info({ service: this.name, pid: running.pid }, `stopping ${this.name}`);
    await running.stop();
    const exit = await running.exited;
    this.log.info(
      { service: this.name, pid: running.pid, code: exit.code, signal: exit.signal },
      `${this.name} stopped`,
    );
  }

  signal(signal: NodeJS.Signals): void {
    this.running?.signal(signal);
  }

  /**
   * SIGKILLs the service and keeps it down, as a machine lost with its region would be, until start() is called
   * again (chaos experiments).
   */
  async crash(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.restartTimer);
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    this.log.warn({ service: this.name, pid: running.pid }, `${this.name} killed; kept down`);
    running.signal('SIGKILL');
    await running.exited;
  }

  private async launchOnce(): Promise<void> {
    const running = await this.launch();
    if (!this.wanted) {
      // Stopped while it was starting.
      await running.stop();
      return;
    }
    this.running = running;
    this.onLaunched?.();
    const startedAt = Date.now();
    void running.exited.then((exit) => this.onExit(running, exit, startedAt));
  }

  private onExit(running: RunningService, exit: ProcessExit, startedAt: number): void {
    if (this.running !== running) return;
    this.running = undefined;
    if (!this.wanted) return;
    if (exit.code === 0 && exit.signal === null) {
      this.log.warn({ service: this.name, pid: running.pid }, `${this.name} exited cleanly (drained); not restarting`);
      return;
    }
    if (Date.now() - startedAt > 60_000) this.consecutiveFailures = 0;
    this.scheduleRestart(`exited unexpectedly (${exit.signal ?? `code ${exit.code}`})`);
  }

  private scheduleRestart(reason: string): void {
    const backoffMs = Math.min(30_000, 500 * 2 ** this.consecutiveFailures);
    this.consecutiveFailures += 1;
    this.log.warn({ service: this.name, backoffMs }, `${this.name} ${reason}; restarting in ${backoffMs} ms`);
    this.restartTimer = setTimeout(() => {
      if (!this.wanted) return;
      this.launchOnce().catch((err: unknown) => {
        if (this.wanted) this.scheduleRestart(`failed to restart: ${err instanceof Error ? err.message : String(err)}`);
      });
    }, backoffMs);
  }
}
