// Where the local stack's processes serve Prometheus metrics: the gateway on its HTTP port, and each worker on a
// health port of its own (/healthz, /readyz, /metrics), which the launcher picks once per start so that the URLs it
// prints and records in stack.json stay valid when a child restarts.
import { freePort } from './ports';

export interface WorkerHealthPorts {
  /** The health port of each worker child, by name (`control-worker`, `gpu-worker[<type>]`, `...@<region>`). */
  readonly ports: ReadonlyMap<string, number>;
  /** The /metrics URL of the gateway and of each worker, by child name. */
  readonly metricsUrls: Readonly<Record<string, string>>;
}

/**
 * Free, distinct ports for the workers of this start (`names`: every region's worker children), and every Node
 * child's /metrics URL (`gateways`: each gateway's HTTP base, by child name).
 */
export async function workerHealthPorts(
  names: readonly string[],
  gateways: Readonly<Record<string, string>>,
  env: Record<string, string | undefined>,
): Promise<WorkerHealthPorts> {
  const ports = new Map<string, number>();
  while (ports.size < names.length) {
    const port = await freePort();
    if (![...ports.values()].includes(port)) ports.set(names[ports.size] as string, port);
  }
  // Workers listen on ATELIER_WORKER_HEALTH_HOST (loopback unless the environment says otherwise).
  const host = env.ATELIER_WORKER_HEALTH_HOST || '127.0.0.1';
  const urlHost = ['0.0.0.0', '::'].includes(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const metricsUrls: Record<string, string> = {};
  for (const [name, httpUrl] of Object.entries(gateways)) metricsUrls[name] = `${httpUrl}/metrics`;
  for (const [name, port] of ports) metricsUrls[name] = `http://${urlHost}:${port}/metrics`;
  return { ports, metricsUrls };
}
