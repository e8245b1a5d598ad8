// Failover of a dead region's requests (issue 12), run by every control worker. Every few seconds it reads each
// region's health (runtime/region-beats.ts) and, for each unhealthy region it coordinates:
//   - adoption: when the region has no control worker left, this control worker also polls the region's control queue
//     (`<region>.control`), so its requests' workflows go on, their safety screens and storage included;
//   - moving: each of the region's running requests is sent the `moveRegion` signal (workflows/region-move.ts) naming
//     the nearest healthy region that serves its model; one whose GPU attempt waits to start has it cancelled and
//     rescheduled there at once, one whose attempt runs keeps it (a dead worker's attempt times out on its heartbeat
//     and its retry goes there).
// A region is coordinated by its own control worker while it has one (its GPU workers died), else by the nearest
// healthy region in its failover order, so each dead region has one coordinating region. When the region is healthy
// again its new requests go home (gateways), the adoption ends once its own control worker is back, and what moved
// stays where it runs: nothing runs twice.
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { RegionHealth } from '../core/region-health';
import { chooseRegion, failoverOrder, findRegion, type RegionCatalogue } from '../core/regions';
import { controlTaskQueue } from '../core/gpu';
import { isModelName } from '../core/models';
import type { Logger } from '../runtime/logger';
import type { RedisClient } from '../runtime/redis';
import { readRegionHealth, RegionBeats } from '../runtime/region-beats';
import { loadRegionCatalogue } from '../runtime/region-catalogue';
import { WorkerControlStore } from '../runtime/worker-control';
import { moveRegionSignal } from '../workflows/region-move';
import type { SupervisedWorker } from './supervised-worker';

/** Temporal's PendingActivityState for an activity scheduled and not yet started. */
const PENDING_ACTIVITY_STATE_SCHEDULED = 1;
/** Requests moved per region and round, at most: a large backlog moves over several rounds. */
const MOVES_PER_ROUND = 500;

export interface RegionFailoverOptions {
  /** This control worker's region. */
  readonly region: string;
  readonly catalogue: RegionCatalogue;
  readonly temporalAddress: string;
  readonly namespace: string;
  readonly health: () => Promise<RegionHealth[]>;
  /** Starts polling a dead region's control queue; returns the function that stops it (draining). */
  readonly adopt: (region: string) => () => Promise<void>;
  readonly intervalMs: number;
  readonly log: Logger;
}

export class RegionFailover {
  private readonly connection: Connection;
  private readonly client: Client;
  private readonly adopted = new Map<string, () => Promise<void>>();
  /** Requests signalled already, by workflow id: the move they were sent. */
  private readonly signalled = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;

  constructor(private readonly options: RegionFailoverOptions) {
    this.connection = Connection.lazy({ address: options.temporalAddress });
    this.client = new Client({ connection: this.connection, namespace: options.namespace });
  }

  start(): void {
    const tick = (): void => {
      this.round ??= this.runRound()
        .catch((err: unknown) => this.options.log.warn({ err }, 'region failover round failed'))
        .finally(() => (this.round = undefined));
    };
    this.timer = setInterval(tick, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.round;
    await Promise.all([...this.adopted.values()].map((stop) => stop()));
    this.adopted.clear();
    await this.connection.close().catch(() => undefined);
  }

  /** One round: adopt or release control queues, and move the requests of the regions this one coordinates. */
  async runRound(): Promise<void> {
    const view = await this.options.health();
    const byName = new Map(view.map((r) => [r.region, r]));
    const healthy = (region: string): boolean => byName.get(region)?.healthy === true;
    for (const r of view) {
      const mine = !r.healthy && this.coordinatorOf(r.region, byName) === this.options.region;
      // Adopted while workflows run on its control queue, moved ones included (their tasks are still queued there);
      // a region of the catalogue that was never deployed has none, and is not polled for nothing.
      const adopt =
        mine && r.controlWorkers === 0 && r.region !== this.options.region && (await this.hasWorkflows(r.region));
      if (adopt && !this.adopted.has(r.region)) {
        this.options.log.warn(
          { region: r.region, problems: r.problems },
          'adopting the control queue of a dead region',
        );
        this.adopted.set(r.region, this.options.adopt(r.region));
      }
      if (!adopt) await this.release(r.region);
      if (mine) await this.moveRequests(r.region, healthy);
    }
  }

  /** Who coordinates an unhealthy region: itself while it has a control worker, else its nearest healthy region. */
  private coordinatorOf(region: string, view: ReadonlyMap<string, RegionHealth>): string | undefined {
    if ((view.get(region)?.controlWorkers ?? 0) > 0) return region;
    const order = failoverOrder(this.options.catalogue, region);
    return order.find((r) => r.name !== region && view.get(r.name)?.healthy)?.name;
  }

  /** Stops polling a region's control queue: its own control worker is back, or another region coordinates it. */
  private async release(region: string): Promise<void> {
    const stop = this.adopted.get(region);
    if (!stop) return;
    this.adopted.delete(region);
    this.options.log.info({ region }, 'releasing the control queue of an adopted region');
    await stop();
  }

  /** Requests (not the region's autoscaler, whose fleets are gone with it) still run on the region's control queue. */
  private async hasWorkflows(region: string): Promise<boolean> {
    const query = `TaskQueue = "${controlTaskQueue(region)}" AND WorkflowType = "generateImage" AND ExecutionStatus = "Running"`;
    return (await this.client.workflow.count(query)).count > 0;
  }

  private async moveRequests(region: string, healthy: (region: string) => boolean): Promise<void> {
    const query = `Region = "${region}" AND ExecutionStatus = "Running"`;
    let moved = 0;
    for await (const info of this.client.workflow.list({ query })) {
      if (moved >= MOVES_PER_ROUND) break;
      const model = String((info.searchAttributes?.Model as unknown[] | undefined)?.[0] ?? '');
      if (!isModelName(model)) continue;
      const choice = chooseRegion(this.options.catalogue, region, model, healthy);
      if (!choice.ok || choice.region === region) continue;
      const move = `${region}->${choice.region}`;
      if (this.signalled.get(info.workflowId) === move) continue;
      const handle = this.client.workflow.getHandle(info.workflowId, info.runId);
      const cancelWaiting = await this.waitsToStart(handle);
      await handle.signal(moveRegionSignal, { from: region, to: choice.region, cancelWaiting });
      this.signalled.set(info.workflowId, move);
      moved++;
    }
    if (moved > 0) this.options.log.warn({ from: region, moved }, 'moved waiting requests out of a dead region');
    if (this.signalled.size > 100_000) this.signalled.clear();
  }

  /** Whether the request's GPU attempt is scheduled and not started (so cancelling it loses no work). */
  private async waitsToStart(handle: WorkflowHandle): Promise<boolean> {
    const description = await handle.describe();
    return (description.raw.pendingActivities ?? []).some(
      (a) => a.activityType?.name === 'runInference' && Number(a.state ?? 0) === PENDING_ACTIVITY_STATE_SCHEDULED,
    );
  }
}

export interface RegionFailoverSetup {
  readonly region: string;
  readonly temporalAddress: string;
  readonly temporalNamespace: string;
  /** 0: no failover (the region is alone, or another process coordinates). */
  readonly intervalMs: number;
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly log: Logger;
  /** A control worker for another region's control queue (same bundle and activities), not yet started. */
  readonly adoptWorker: (region: string) => SupervisedWorker;
}

/**
 * Starts the failover of dead regions' requests in a control worker; undefined when it is off, or when the region is
 * not in the region catalogue (a test's private region: there is nowhere to fail over to).
 */
export function startRegionFailover(setup: RegionFailoverSetup): RegionFailover | undefined {
  if (setup.intervalMs <= 0) return undefined;
  const catalogue = loadRegionCatalogue();
  if (!findRegion(catalogue, setup.region)) return undefined;
  const beats = new RegionBeats(setup.redis, setup.prefix);
  const registry = new WorkerControlStore(setup.redis, setup.prefix);
  const names = catalogue.regions.map((r) => r.name);
  const failover = new RegionFailover({
    region: setup.region,
    catalogue,
    temporalAddress: setup.temporalAddress,
    namespace: setup.temporalNamespace,
    health: () => readRegionHealth(beats, registry, names),
    adopt: (region) => {
      const worker = setup.adoptWorker(region);
      void worker.start();
      return () => worker.stop();
    },
    intervalMs: setup.intervalMs,
    log: setup.log,
  });
  failover.start();
  return failover;
}
