// The gateway's view of every region (issue 12): each region's health from live signals (core/region-health.ts: its
// control workers' and gateways' beats, runtime/region-beats.ts, and its GPU workers in the worker registry), read at
// most once a second, and where a new request goes (core/regions.ts chooseRegion): home while home serves its model
// and is healthy, else the nearest healthy region that serves it. The view is on the admin API (/admin/regions) and
// in /metrics (atelier_region_healthy).
//
// When no region that serves the model is healthy: a request whose home serves the model waits there (Temporal keeps
// it until the region's workers are back: seed 001's "queue requests that can't be served"), marked degraded; one
// whose model only other regions serve is refused with REGION_UNAVAILABLE and a retryAfterMs of one heartbeat timeout,
// the time a recovering region takes to be seen again. A gateway whose home region is not in the catalogue (a test's
// private region) keeps every request home.
import type { Registry } from 'prom-client';
import type { RegionHealth } from '../core/region-health';
import { chooseRegion, findRegion, type RegionCatalogue, type RegionDetour } from '../core/regions';
import type { GenerationRequest } from '../core/request';
import { HEALTH_CHECK } from '../core/worker-health';
import type { Logger } from '../runtime/logger';
import { atelierGauge } from '../runtime/metrics';
import type { RedisClient } from '../runtime/redis';
import { RegionBeats, readRegionHealth } from '../runtime/region-beats';
import { WorkerControlStore } from '../runtime/worker-control';
import { cachedFor } from './async';

/** How long one reading of the regions' signals is reused, ms. */
const VIEW_CACHE_MS = 1_000;

/** Where a new request runs, or why none can take it. */
export type Placement =
  | { readonly ok: true; readonly region: string; readonly degraded: boolean; readonly reason?: RegionDetour }
  | {
      readonly ok: false;
      readonly code: 'REGION_UNAVAILABLE';
      readonly message: string;
      readonly retryAfterMs: number;
    };

export interface RegionMonitorOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  /** The region catalogue; without one, or without `home` in it, every request stays home. */
  readonly catalogue: RegionCatalogue | undefined;
  readonly home: string;
  /** Names this gateway in its region's beats. */
  readonly gatewayId: string;
  readonly log: Logger;
}

export class RegionMonitor {
  private readonly beats: RegionBeats;
  private readonly workers: WorkerControlStore;
  private readonly read: () => Promise<RegionHealth[]>;
  private stopBeating: (() => Promise<void>) | undefined;

  constructor(private readonly options: RegionMonitorOptions) {
    this.beats = new RegionBeats(options.redis, options.prefix);
    this.workers = new WorkerControlStore(options.redis, options.prefix);
    const cached = cachedFor(VIEW_CACHE_MS, () => this.readView());
    this.read = () => cached(undefined);
  }

  /** Whether regions other than home can take this gateway's requests. */
  get routing(): boolean {
    const { catalogue, home } = this.options;
    return catalogue !== undefined && findRegion(catalogue, home) !== undefined;
  }

  /** Beats for this gateway in its home region while `serving()` says so. */
  start(serving: () => boolean): void {
    this.stopBeating ??= this.beats.start(this.options.home, 'gateway', this.options.gatewayId, serving, (err) =>
      this.options.log.debug({ err }, 'region beat failed'),
    );
  }

  async stop(): Promise<void> {
    await this.stopBeating?.();
  }

  /** Every region of the catalogue (or the home region alone), with its health. */
  view(): Promise<RegionHealth[]> {
    return this.read();
  }

  /** Where a new request runs. Signals that cannot be read leave it home (logged): failover needs evidence. */
  async place(request: GenerationRequest): Promise<Placement> {
    const { catalogue, home } = this.options;
    if (!catalogue || !this.routing) return { ok: true, region: home, degraded: false };
    let view: RegionHealth[];
    try {
      view = await this.read();
    } catch (err) {
      this.options.log.warn({ err }, 'Region health unreadable; keeping the request home');
      return { ok: true, region: home, degraded: false };
    }
    const healthy = new Set(view.filter((r) => r.healthy).map((r) => r.region));
    const choice = chooseRegion(catalogue, home, request.model, (region) => healthy.has(region));
    if (choice.ok) return choice;
    if (choice.reason === 'no-healthy-region' && findRegion(catalogue, home)?.models.includes(request.model))
      return { ok: true, region: home, degraded: true, reason: 'home-unhealthy' };
    const serving = catalogue.regions.filter((r) => r.models.includes(request.model)).map((r) => r.name);
    const retryAfterMs = HEALTH_CHECK.timeoutMs;
    const message =
      serving.length === 0
        ? `No region serves ${request.model}`
        : `${request.model} is served by ${serving.join(', ')}, and none of them is healthy; retry in ${retryAfterMs} ms`;
    return { ok: false, code: 'REGION_UNAVAILABLE', message, retryAfterMs };
  }

  private async readView(): Promise<RegionHealth[]> {
    const { catalogue, home } = this.options;
    const names = catalogue && this.routing ? catalogue.regions.map((r) => r.name) : [home];
    return readRegionHealth(this.beats, this.workers, names);
  }

  /** atelier_region_healthy in the gateway's registry (made after the monitor). */
  registerMetrics(registry: Registry): void {
    const read = (): Promise<RegionHealth[]> => this.read();
    atelierGauge(registry, {
      name: 'atelier_region_healthy',
      help: '1 while a region can take new requests (a control worker polls, a GPU worker is ready), as this gateway sees it',
      labelNames: ['region'] as const,
      async collect() {
        const view = await read().catch(() => []);
        this.reset();
        for (const r of view) this.set({ region: r.region }, r.healthy ? 1 : 0);
      },
    });
  }
}
