// A GPU worker's place in its fleet: it announces itself in the Redis registry every health interval (so operators
// see each worker's state, holds and breaker, and a silent one lapses after 30 s), and it follows the operators'
// orders: paused (its fleet's or its own) = it finishes what it holds and takes nothing new; resume = it polls again;
// drain = it finishes what it holds and exits. Orders arrive as a published nudge and are re-read at every
// announcement, so a missed nudge costs at most one interval. Each order is logged where it takes effect.
import { HEALTH_CHECK } from '../core/worker-health';
import type { Logger } from '../runtime/logger';
import type { WorkerControlStore, WorkerOrders, WorkerRecord } from '../runtime/worker-control';
import type { SupervisedWorker } from './worker-runtime';

export interface GpuControlDeps {
  readonly store: WorkerControlStore;
  readonly supervised: Pick<SupervisedWorker, 'hold' | 'release' | 'heldFor'>;
  readonly identity: { readonly workerId: string; readonly region: string; readonly gpuType: string };
  /** The worker's readiness and breaker, for its registry entry. */
  readonly status: () => { ready: boolean; breaker: string; dutyCycle?: number };
  /** Finishes the work in hand and exits. */
  readonly drain: (reason: string) => void;
  readonly log: Logger;
  /** @default HEALTH_CHECK.intervalMs (10 s) */
  readonly intervalMs?: number;
}

export class GpuControl {
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => Promise<void>) | undefined;
  private applied: WorkerOrders = { pausedBy: undefined, drain: false };
  private draining = false;
  private syncing: Promise<void> | undefined;

  constructor(private readonly deps: GpuControlDeps) {}

  async start(): Promise<void> {
    // Orders in force are applied before the first poll: a worker joining a paused fleet starts paused.
    await this.sync().catch((err: unknown) => this.deps.log.warn({ err }, 'could not read operator orders'));
    this.unwatch = await this.deps.store
      .watch(() => void this.sync())
      .catch((err: unknown) => {
        this.deps.log.warn({ err }, 'could not subscribe to operator orders; reading them every interval instead');
        return undefined;
      });
    this.timer = setInterval(() => void this.sync(), this.deps.intervalMs ?? HEALTH_CHECK.intervalMs);
    this.timer.unref();
  }

  /** Marks the worker as draining in the registry (a drain by signal as much as by order). */
  markDraining(): void {
    this.draining = true;
    void this.announce().catch(() => undefined);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.unwatch?.();
    await this.deps.store.withdraw(this.deps.identity.workerId).catch(() => undefined);
  }

  /** Reads the orders in force, applies what changed, and announces the worker. One at a time. */
  sync(): Promise<void> {
    this.syncing ??= this.syncOnce()
      .catch((err: unknown) => this.deps.log.warn({ err }, 'operator orders or announcement failed'))
      .finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const { workerId, region, gpuType } = this.deps.identity;
    const orders = await this.deps.store.ordersFor(workerId, region, gpuType);
    this.apply(orders);
    await this.announce();
  }

  private apply(orders: WorkerOrders): void {
    const { log, supervised } = this.deps;
    if (orders.pausedBy !== this.applied.pausedBy) {
      if (orders.pausedBy) {
        log.warn({ order: 'pause', by: orders.pausedBy }, `operator order: paused (${orders.pausedBy})`);
        supervised.hold('paused', `paused by an operator (${orders.pausedBy})`);
      } else {
        log.warn({ order: 'resume' }, 'operator order: resumed');
        supervised.release('paused');
      }
    }
    if (orders.drain && !this.applied.drain && !this.draining) {
      log.warn({ order: 'drain' }, 'operator order: drain (finish in-flight work, then exit)');
      this.markDraining();
      this.deps.drain('drained by an operator');
    }
    this.applied = orders;
  }

  private async announce(): Promise<void> {
    const holds = this.deps.supervised.heldFor();
    const { ready, breaker, dutyCycle } = this.deps.status();
    const record: WorkerRecord = {
      ...this.deps.identity,
      state: this.draining ? 'draining' : Object.keys(holds).length > 0 ? 'held' : 'serving',
      holds,
      breaker,
      ready,
      ...(dutyCycle !== undefined ? { dutyCycle } : {}),
      announcedAt: Date.now(),
    };
    await this.deps.store.announce(record);
  }
}
