// Prometheus for the local stack: started last, once every process serves /metrics, with each of them as a target
// (file-based discovery: <data dir>/prometheus/targets.json, written from the metrics URLs the launcher assigned,
// which stay the same when a child restarts, so `up` drops to 0 while one is down and the alerts see it). Not
// having Prometheus is not fatal: without it (and without root to install it) the stack runs and says how to add it.
import path from 'node:path';
import type { Logger } from '../runtime/logger';
import { startPrometheus, writeTargetsFile, type PrometheusTarget } from './prometheus';
import { resolvePrometheus } from './provision';
import type { StackOptions } from './stack-options';
import { Supervisor } from './supervisor';

/** One target per process that serves metrics, labelled with the process name the alerts select on. */
export function prometheusTargets(metricsUrls: Readonly<Record<string, string>>, region: string): PrometheusTarget[] {
  return Object.entries(metricsUrls).map(([name, url]) => {
    const parsed = new URL(url);
    const extra: Record<string, string> = parsed.pathname === '/metrics' ? {} : { __metrics_path__: parsed.pathname };
    return { target: parsed.host, labels: { process: name, region, ...extra } };
  });
}

/**
 * Writes the targets and starts a supervised Prometheus on `options.prometheusPort`; undefined when the port is 0
 * or Prometheus cannot be provisioned (logged with the reason).
 */
export async function superviseStackPrometheus(
  options: StackOptions,
  dataDir: string,
  metricsUrls: Readonly<Record<string, string>>,
  ctx: { log: Logger; onOutput: (name: string, line: string) => void },
): Promise<{ supervisor: Supervisor; url: string } | undefined> {
  if (options.prometheusPort === 0) return undefined;
  let binary: string;
  try {
    binary = (await resolvePrometheus({ log: (line) => ctx.log.info(line) })).prometheus;
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, 'Prometheus is not available; the stack runs without it');
    return undefined;
  }
  const promDir = path.join(dataDir, 'prometheus');
  const targetsFile = path.join(promDir, 'targets.json');
  await writeTargetsFile(targetsFile, prometheusTargets(metricsUrls, options.region));
  const host = '127.0.0.1';
  const supervisor = new Supervisor(
    'prometheus',
    async () => {
      const server = await startPrometheus({
        binary,
        dataDir: promDir,
        host,
        port: options.prometheusPort,
        targetsFile,
        log: ctx.log,
        onOutput: (line) => ctx.onOutput('prometheus', line),
        readyTimeoutMs: options.readyTimeoutMs,
      });
      return {
        pid: server.process.pid,
        exited: server.exited,
        stop: server.stop,
        signal: (signal) => server.process.kill(signal),
      };
    },
    ctx.log,
  );
  await supervisor.start();
  return { supervisor, url: `http://${host}:${options.prometheusPort}` };
}
