// Prometheus metrics of one process (prom-client): the registry with the `process` and `region` labels on every
// sample, Node's default metrics, the event-loop lag every process exports, helpers that declare `atelier_` metrics,
// and what serves `/metrics`. Names carry their unit (`_seconds`, `_bytes`, `_total`) and labels stay few and bounded
// (tier, model, gpu_type, backend, code, outcome, task_queue): never a user or request id, whose values would grow
// without end and make every series a single sample.
import type { ServerResponse } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The `process` label: which of Atelier's programs exports the sample. */
export type ProcessRole = 'gateway' | 'control-worker' | 'gpu-worker';

export interface ProcessMetricsOptions {
  readonly process: ProcessRole;
  readonly region: string;
}

/** Sampling interval of the event-loop delay monitor, ms; every sample includes it, so it is taken off again. */
const EVENT_LOOP_RESOLUTION_MS = 10;

/**
 * The registry of one process. Every process creates one at start-up and hands it to what records into it; tests that
 * run several gateways in one process give each its own, so their figures stay apart.
 */
export function createProcessRegistry(options: ProcessMetricsOptions): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ process: options.process, region: options.region });
  collectDefaultMetrics({ register: registry });
  eventLoopLagGauge(registry);
  return registry;
}

/**
 * `atelier_event_loop_lag_seconds`: p99 of how late the event loop ran a 10 ms timer since the previous scrape. A
 * late loop delays WebSocket frames, heartbeats to Temporal and progress events alike, so it is on every process.
 * Between two scrapes with no sample (less than 10 ms apart) the gauge keeps its last value.
 */
function eventLoopLagGauge(registry: Registry): void {
  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  delay.enable();
  atelierGauge(registry, {
    name: 'atelier_event_loop_lag_seconds',
    help: 'p99 event-loop delay of this process since the previous scrape, seconds',
    collect() {
      if (delay.count === 0) return;
      const lateNs = delay.percentile(99) - EVENT_LOOP_RESOLUTION_MS * 1e6;
      this.set(Math.max(0, lateNs) / 1e9);
      delay.reset();
    },
  });
}

const METRIC_NAME = /^atelier_[a-z][a-z0-9_]*[a-z0-9]$/;

function checkName(name: string, kind: string, suffix?: RegExp): void {
  if (!METRIC_NAME.test(name)) throw new TypeError(`Metric ${name}: Atelier's metrics are named atelier_<what>_<unit>`);
  if (suffix && !suffix.test(name)) throw new TypeError(`Metric ${name}: a ${kind}'s name ends with ${String(suffix)}`);
}

interface MetricSpec<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

/** A counter named `atelier_<what>_total`. */
export function atelierCounter<L extends string = never>(
  registry: Registry,
  spec: MetricSpec<L> & { collect?: (this: Counter<L>) => void | Promise<void> },
): Counter<L> {
  checkName(spec.name, 'counter', /_total$/);
  return new Counter<L>({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] });
}

/** A gauge named `atelier_<what>[_<unit>]`; `collect` may set it at each scrape. */
export function atelierGauge<L extends string = never>(
  registry: Registry,
  spec: MetricSpec<L> & { collect?: (this: Gauge<L>) => void | Promise<void> },
): Gauge<L> {
  checkName(spec.name, 'gauge');
  return new Gauge<L>({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] });
}

/** A histogram of a duration (`_seconds`) or a count (`_size`), with buckets chosen for what it measures. */
export function atelierHistogram<L extends string = never>(
  registry: Registry,
  spec: MetricSpec<L> & { buckets: readonly number[] },
): Histogram<L> {
  checkName(spec.name, 'histogram', /_(seconds|bytes|size)$/);
  return new Histogram<L>({
    ...spec,
    buckets: [...spec.buckets],
    labelNames: spec.labelNames ?? [],
    registers: [registry],
  });
}

/** What `/metrics` serves: this process's registry, then any text appended (the Temporal SDK's own metrics). */
export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

export function metricsEndpoint(
  registry: Registry,
  appended: readonly (() => Promise<string>)[] = [],
): MetricsEndpoint {
  return {
    contentType: registry.contentType,
    async render() {
      const parts = await Promise.all([registry.metrics(), ...appended.map((more) => more())]);
      return parts.map((text) => (text.endsWith('\n') || text === '' ? text : `${text}\n`)).join('');
    },
  };
}

/** Answers a GET or HEAD of `/metrics` with the Prometheus text format (never cached). */
export async function serveMetrics(
  endpoint: MetricsEndpoint,
  method: string | undefined,
  res: ServerResponse,
): Promise<void> {
  let body: string;
  try {
    body = await endpoint.render();
  } catch (err) {
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`);
    return;
  }
  res.writeHead(200, {
    'Content-Type': endpoint.contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(method === 'HEAD' ? undefined : body);
}
