// The supervisor of a worker process's Temporal Workers: keeps them polling across Temporal server restarts
// (reconnect with back-off, recreate the Workers whenever they stop without being asked to), and takes the process
// out of its task queues while it is held (paused, unhealthy, breaker open, reloading a model).
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../runtime/logger';

/** `held`: asked to take no work (paused, unhealthy, breaker open, reloading a model); no Worker polls. */
export type SupervisorState = 'connecting' | 'running' | 'held' | 'reconnecting' | 'stopping' | 'stopped';

export interface SupervisedWorkerOptions {
  /** Shown in logs, e.g. `control-worker`. */
  readonly name: string;
  readonly temporalAddress: string;
  readonly temporalNamespace: string;
  readonly reconnectMaxBackoffMs: number;
  /**
   * Builds the Worker options on each (re)connection; the connection and namespace are filled in. Several options make
   * several Workers on one connection (a GPU worker's fleet queue and relax lane), run and held together.
   */
  readonly workerOptions: () => WorkerOptionsOnConnection | readonly WorkerOptionsOnConnection[];
  readonly log: Logger;
}

/**
 * Keeps one Temporal Worker (or a set run as one) running until `stop()`. If connecting fails, or the Worker stops or fails on its
 * own (a Temporal server restart can end its pollers with a fatal error), it logs, waits (exponential back-off
 * up to `reconnectMaxBackoffMs`), reconnects and creates a fresh Worker. Work is never lost meanwhile: workflow
 * and activity tasks stay in Temporal and are retried or redelivered once a Worker polls again.
 *
 * `hold(reason)` takes the process out of its task queue without ending it: the Worker shuts down gracefully (it
 * polls no more; tasks in flight get the shutdown grace time, then are handed back to run elsewhere), and no new
 * Worker starts until every hold is released. An idle worker therefore never polls for work it could only fail,
 * and a poll can never bring a task to a worker that is on its way out: shutting the Worker down ends its polls.
 */
type WorkerOptionsOnConnection = Omit<WorkerOptions, 'connection' | 'namespace'>;

/** Runs Workers as one: the first to end (shut down or failed) shuts the others down; rejects if any failed. */
async function runTogether(workers: readonly Worker[]): Promise<void> {
  const runs = workers.map((w) => w.run());
  await Promise.race(runs.map((run) => run.then(noop, noop)));
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  const failed = (await Promise.allSettled(runs)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function noop(): void {}

export class SupervisedWorker {
  private current: { workers: Worker[]; connection: NativeConnection } | undefined;
  private stopping = false;
  private wake: AbortController = new AbortController();
  private loop: Promise<void> | undefined;
  private restarts = 0;
  private lastError: string | undefined;
  /** Why the process takes no work, by reason (`paused`, `unhealthy`, ...), with a detail for /readyz and logs. */
  private readonly holds = new Map<string, string>();
  private holdsReleased: AbortController = new AbortController();
  /** Whether the current Worker was shut down because of a hold (not by a failure). */
  private shutDownForHold = false;
  state: SupervisorState = 'connecting';

  constructor(private readonly options: SupervisedWorkerOptions) {}

  /** Starts the supervision loop; resolves once the first Worker runs, or when a hold or stop() comes first. */
  start(): Promise<void> {
    this.loop ??= this.supervise();
    return this.waitUntilRunning();
  }

  /** Whether a Worker is polling right now. */
  get running(): boolean {
    const workers = this.current?.workers ?? [];
    return this.state === 'running' && workers.length > 0 && workers.every((w) => w.getState() === 'RUNNING');
  }

  describe(): Record<string, unknown> {
    return {
      name: this.options.name,
      state: this.state,
      workerState: this.current?.workers[0]?.getState() ?? null,
      restarts: this.restarts,
      holds: Object.fromEntries(this.holds),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** The reasons the process takes no work right now; empty while it does. */
  heldFor(): Record<string, string> {
    return Object.fromEntries(this.holds);
  }

  /** Stops taking work for `reason` until `release(reason)`; in-flight tasks finish (within the grace time). */
  hold(reason: string, detail: string = reason): void {
    const first = this.holds.size === 0;
    this.holds.set(reason, detail);
    if (!first) return;
    this.options.log.warn({ worker: this.options.name, reason, detail }, 'taking no new work');
    this.holdsReleased = new AbortController();
    this.shutDownForHold = this.current !== undefined;
    this.shutdownCurrent();
  }

  /** Lifts one hold; once none is left, a Worker polls again. */
  release(reason: string): void {
    if (!this.holds.delete(reason) || this.holds.size > 0) return;
    this.options.log.info({ worker: this.options.name, reason }, 'taking work again');
    this.holdsReleased.abort();
  }

  /** Graceful stop: no new tasks, in-flight ones get the shutdown grace time, then the connection closes. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.state = 'stopping';
    this.wake.abort();
    this.holdsReleased.abort();
    this.shutdownCurrent();
    await this.loop;
    this.state = 'stopped';
  }

  private async waitUntilRunning(): Promise<void> {
    while (!this.running) {
      // Held from the start (a worker joining a paused fleet): started, and deliberately not polling.
      if (this.stopping || this.holds.size > 0) return;
      await sleep(50);
    }
  }

  private shutdownCurrent(): void {
    for (const worker of this.current?.workers ?? []) if (worker.getState() === 'RUNNING') worker.shutdown();
  }

  /** While held: no connection, no Worker, until every hold is released or stop() is called. */
  private async waitWhileHeld(): Promise<void> {
    if (this.holds.size === 0 || this.stopping) return;
    this.state = 'held';
    await new Promise<void>((resolve) => {
      if (this.holdsReleased.signal.aborted) return resolve();
      this.holdsReleased.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  private async supervise(): Promise<void> {
    const { log, name } = this.options;
    for (let attempt = 0; !this.stopping;) {
      await this.waitWhileHeld();
      if (this.stopping) break;
      let connection: NativeConnection | undefined;
      try {
        connection = await NativeConnection.connect({ address: this.options.temporalAddress });
        const workers: Worker[] = [];
        for (const options of [this.options.workerOptions()].flat())
          workers.push(await Worker.create({ ...options, connection, namespace: this.options.temporalNamespace }));
        this.current = { workers, connection };
        this.shutDownForHold = this.holds.size > 0;
        const run = runTogether(workers);
        if (this.stopping || this.holds.size > 0) this.shutdownCurrent();
        this.state = 'running';
        this.lastError = undefined;
        const taskQueues = workers.map((w) => w.options.taskQueue);
        log.info({ worker: name, taskQueues, restarts: this.restarts }, 'worker running');
        attempt = 0;
        await run;
        // Shut down for a hold: on purpose, so no back-off; the loop waits while any hold remains.
        if (this.shutDownForHold && !this.stopping) continue;
        if (!this.stopping) log.warn({ worker: name }, 'worker stopped on its own; recreating it');
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        if (!this.stopping)
          log.warn(
            { worker: name, err: this.lastError, attempt },
            'worker failed or Temporal unreachable; reconnecting',
          );
      } finally {
        this.current = undefined;
        await connection?.close().catch((err: unknown) => log.debug({ err }, 'closing the Temporal connection failed'));
      }
      if (this.stopping) break;
      this.state = 'reconnecting';
      this.restarts++;
      const backoffMs =
        Math.min(this.options.reconnectMaxBackoffMs, 200 * 2 ** Math.min(attempt, 10)) * (0.8 + Math.random() * 0.4);
      attempt++;
      await sleep(backoffMs, undefined, { signal: this.wake.signal }).catch(() => undefined);
    }
  }
}
