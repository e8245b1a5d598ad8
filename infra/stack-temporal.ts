// The local stack's Temporal: the dev server we start and supervise (SQLite in the data dir, Web UI, metrics on a
// fixed port), or a server that already answers at TEMPORAL_ADDRESS, which we only register our search attributes on.
import path from 'node:path';
import { freePort, isLocalHost, parseHostPort } from './ports';
import { resolveTemporalCli } from './provision';
import { StackStartError, type LaunchContext } from './stack-context';
import type { StackOptions } from './stack-options';
import { Supervisor } from './supervisor';
import { registerSearchAttributes, startTemporalDevServer, temporalAnswers } from './temporal';

/** Our Temporal dev server, or undefined when a server already answers at the address (then we only use it). */
export async function superviseTemporal(
  options: StackOptions,
  dataDir: string,
  ctx: LaunchContext,
): Promise<{ supervisor: Supervisor | undefined; urls: () => { ui?: string; metrics?: string } }> {
  const { log } = ctx;
  if (await temporalAnswers(options.temporalAddress)) {
    log.info({ address: options.temporalAddress }, 'using the Temporal server that answers at TEMPORAL_ADDRESS');
    await registerSearchAttributes(options.temporalAddress, options.temporalNamespace).catch((err: unknown) =>
      log.warn(
        { err },
        'could not register search attributes on the existing Temporal server; register them yourself (see core/search-attributes.ts)',
      ),
    );
    return { supervisor: undefined, urls: () => ({}) };
  }
  const { host, port } = parseHostPort(options.temporalAddress, 7233);
  if (!isLocalHost(host)) {
    throw new StackStartError(
      `No Temporal server answers at TEMPORAL_ADDRESS=${options.temporalAddress}, and it is not a local address where a dev server could be started.`,
    );
  }
  const cliPath = await resolveTemporalCli({ log: (line) => log.info(line) });
  // Fixed once, so the endpoint stays where it was printed across server restarts.
  const metricsPort = options.temporalMetricsPort || (await freePort());
  let urls: { ui?: string; metrics?: string } = {};
  const supervisor = new Supervisor(
    'temporal',
    async () => {
      const server = await startTemporalDevServer({
        cliPath,
        dataDir: path.join(dataDir, 'temporal'),
        host: host.replace(/^\[|\]$/g, ''),
        port,
        uiPort: options.temporalUiPort === 0 ? false : options.temporalUiPort,
        metricsPort,
        namespace: options.temporalNamespace,
        log,
        onOutput: (line) => ctx.onOutput('temporal', line),
        readyTimeoutMs: options.readyTimeoutMs,
      });
      urls = { ui: server.uiUrl, metrics: server.metricsUrl };
      return {
        pid: server.process.pid,
        exited: server.exited,
        stop: server.stop,
        signal: (signal) => server.process.kill(signal),
      };
    },
    log,
  );
  await supervisor.start();
  return { supervisor, urls: () => urls };
}
