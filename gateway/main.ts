// Entry point of the gateway process: resolves options from the environment (`--help` prints the table),
// listens, and shuts down in order on SIGINT/SIGTERM (a second signal exits at once).
import { createLogger } from '../runtime/logger';
import { startTracing } from '../runtime/tracing';
import { gatewayHelp, resolveGatewayOptions } from './options';
import { createGateway } from './server';

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(gatewayHelp());
    return;
  }
  const options = resolveGatewayOptions();
  const tracing = startTracing('atelier-gateway');
  const log = createLogger('gateway', { gatewayId: options.gatewayId }, options.logLevel);
  const gateway = createGateway(options, { logger: log });
  await gateway.listen();

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'Second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal }, 'Shutting down');
    gateway
      .close()
      .then(() => tracing.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'Shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
