// The metrics side of a worker process: its Prometheus registry (`process` and `region` on every sample), the Temporal
// SDK's own exporter bound to a local port, and the /metrics endpoint that serves both, so that Prometheus scrapes one
// target per process. The SDK's names (see installTemporalRuntime) start with `temporal_`, ours with `atelier_`.
import net from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../runtime/logger';
import { createProcessRegistry, metricsEndpoint, type MetricsEndpoint } from '../runtime/metrics';
import { installTemporalRuntime, type CommonWorkerOptions } from './worker-runtime';

export interface WorkerMetrics {
  readonly registry: Registry;
  /** What the worker's /metrics serves: the registry, then the SDK's text. */
  readonly endpoint: MetricsEndpoint;
  /** The SDK's own endpoint, when bound. */
  readonly sdkMetricsUrl: string | undefined;
}

/** How long /metrics waits for the SDK's exporter on the same machine before serving without its text, ms. */
const SDK_SCRAPE_TIMEOUT_MS = 2_000;

/**
 * Creates the worker's registry and installs the Temporal runtime, with the SDK's Prometheus exporter on
 * 127.0.0.1 when the health port (and so /metrics) is on. Call once, before any Temporal connection.
 */
export async function setUpWorkerMetrics(
  role: 'control-worker' | 'gpu-worker',
  options: Pick<CommonWorkerOptions, 'healthPort' | 'sdkMetricsPort' | 'region'>,
  log: Logger,
): Promise<WorkerMetrics> {
  const registry = createProcessRegistry({ process: role, region: options.region });
  if (options.healthPort === 0) {
    installTemporalRuntime(log);
    return { registry, endpoint: metricsEndpoint(registry), sdkMetricsUrl: undefined };
  }
  // Loopback only: the SDK's endpoint is read by this process's /metrics, never scraped on its own.
  const bindAddress = `127.0.0.1:${options.sdkMetricsPort || (await freeLoopbackPort())}`;
  installTemporalRuntime(log, { bindAddress, globalTags: { process: role, region: options.region } });
  const url = `http://${bindAddress}/metrics`;
  log.debug({ sdkMetrics: url }, 'Temporal SDK metrics exporter bound');
  return { registry, endpoint: metricsEndpoint(registry, [() => scrapeSdkMetrics(url)]), sdkMetricsUrl: url };
}

/** The SDK exporter's text; a comment saying why when it does not answer, so our own metrics are still served. */
async function scrapeSdkMetrics(url: string): Promise<string> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(SDK_SCRAPE_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await res.text();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return `# Temporal SDK metrics unavailable at ${url}: ${reason.replace(/\s+/g, ' ')}\n`;
  }
}

/**
 * A TCP port nothing listens on now on 127.0.0.1, picked by the OS. Core binds it a moment later; another process
 * could take it in between, which on one host at start-up is rare enough (set ATELIER_WORKER_SDK_METRICS_PORT where
 * it is not).
 */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
