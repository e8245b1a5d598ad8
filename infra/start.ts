// `npm start`: runs the local stack (infra/stack.ts) in the foreground, prefixes each child's output with its name,
// prints where everything is once the gateway is ready, and stops it all in order on Ctrl-C.
import { createLogger, type Logger } from '../runtime/logger';
import { formatOptionHelp, resolveOptions } from '../runtime/options';
import { redactUrl } from './redis-server';
import { launchStack, type StackHandle } from './stack';
import { STACK_OPTIONS, type StackOptions } from './stack-options';

const NAME_COLORS = [36, 33, 35, 32, 34, 96, 93, 95, 92, 94];

/** Prints each child's lines behind its name, padded and (on a terminal) coloured. */
function childOutputPrinter(options: StackOptions): (name: string, line: string) => void {
  const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
  const width = Math.max(14, ...options.gpuTypes.map((t) => `gpu-worker[${t}]`.length));
  const colors = new Map<string, number>();
  return (name, line) => {
    if (!colors.has(name)) colors.set(name, NAME_COLORS[colors.size % NAME_COLORS.length] ?? 36);
    const label = name.padEnd(width);
    process.stdout.write(`${color ? `\x1b[${colors.get(name)}m${label}\x1b[0m` : label} | ${line}\n`);
  };
}

/**
 * The first SIGINT/SIGTERM stops the stack in order (or interrupts start-up); a second one a moment later kills
 * everything at once. `handle()` is the stack once it is up.
 */
function stopOnSignal(log: Logger, startup: AbortController, handle: () => StackHandle | undefined): void {
  let shuttingDownSince: number | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDownSince !== undefined) {
      // One Ctrl-C reaches us twice (from the terminal and forwarded by npm/bootstrap); only a deliberate
      // second press a moment later forces the exit.
      if (Date.now() - shuttingDownSince > 2_000) {
        log.warn('second signal: killing all processes now');
        process.exit(1);
      }
      return;
    }
    shuttingDownSince = Date.now();
    log.info({ signal }, 'shutting down: gateway, then workers (draining), then Redis and Temporal');
    const stack = handle();
    if (!stack) {
      // launchStack notices between steps, stops what it started and rejects.
      startup.abort();
      return;
    }
    stack.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** One line per process that serves Prometheus metrics, Temporal's last (it has its own line above). */
function metricsLines(handle: StackHandle): string[] {
  const urls = Object.entries(handle.metricsUrls()).filter(([name]) => name !== 'temporal');
  const width = Math.max(...urls.map(([name]) => name.length)) + 2;
  return urls.map(
    ([name, url], i) => `  ${i === 0 ? 'Metrics         ' : '                '} ${name.padEnd(width)}${url}`,
  );
}

/** The gateway's APIs; with several regions, each region's gateway. */
function gatewayLines(handle: StackHandle): string[] {
  if (handle.regions.length <= 1)
    return [`  WebSocket API    ${handle.gatewayWsUrl}`, `  HTTP API         ${handle.gatewayHttpUrl}`];
  return handle.regions.map(
    (r, i) =>
      `  ${i === 0 ? 'Gateways        ' : '                '} ${r.region.padEnd(10)}${r.gatewayWsUrl}  ${r.gatewayHttpUrl}`,
  );
}

function banner(handle: StackHandle): string {
  return [
    '',
    'Atelier is up.',
    ...gatewayLines(handle),
    `  Temporal Web UI  ${handle.temporalUiUrl ?? '(not started by us: see your Temporal server)'}`,
    `  Temporal         ${handle.temporalAddress} (namespace ${handle.temporalNamespace})`,
    `  Temporal metrics ${handle.temporalMetricsUrl ?? '(not started by us)'}`,
    ...metricsLines(handle),
    `  Prometheus       ${handle.prometheusUrl ?? '(not running: PROMETHEUS_PORT=0, or not installed)'}`,
    `  Redis            ${redactUrl(handle.redisUrl)}`,
    `  API key          ${handle.apiKey}`,
    `  Admin API        ${handle.gatewayHttpUrl}/admin/workers  (npm run admin -- workers; token in stack.json)`,
    `  Data             ${handle.dataDir} (stack.json lists every process)`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ].join('\n');
}

/** `npm start`: runs the stack in the foreground until SIGINT/SIGTERM. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    const title =
      'npm start — run Atelier locally: Temporal dev server, Redis, control worker, one GPU worker per type, gateway.';
    process.stdout.write(formatOptionHelp(title, STACK_OPTIONS));
    return;
  }
  const options = resolveOptions(STACK_OPTIONS);
  const log = createLogger('stack', {}, options.logLevel);
  let handle: StackHandle | undefined;
  const startup = new AbortController();
  stopOnSignal(log, startup, () => handle);

  const { dataDir, temporalAddress, redisUrl, gpuTypes } = options;
  log.info({ dataDir, temporal: temporalAddress, redis: redactUrl(redisUrl), gpuTypes }, 'starting Atelier');
  try {
    handle = await launchStack(options, {
      log,
      extraEnv: {},
      onOutput: childOutputPrinter(options),
      abort: startup.signal,
    });
  } catch (err) {
    if (startup.signal.aborted) process.exit(0);
    throw err;
  }
  process.stdout.write(`${banner(handle)}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`\nnpm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
    // Children are already stopped by launchStack's own cleanup; the exit hook SIGKILLs any stragglers.
    setTimeout(() => process.exit(1), 100).unref();
  });
}
