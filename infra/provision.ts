// Finds, and on a fresh machine installs, the native binaries that the local stack and the tests run: the
// Temporal CLI (its `server start-dev` is our Temporal), redis-server, prometheus with promtool, and
// toxiproxy-server for the chaos suite. Nothing is committed to the repository: installs go to a per-user cache
// directory (or the system package manager for Redis and Prometheus).
//
// `node dist/infra/provision.js` resolves them and prints their paths. The work is in provision-temporal.ts,
// provision-redis.ts, provision-prometheus.ts, provision-toxiproxy.ts and what they share; importers use this
// module.
import { ProvisionError } from './provision-common';
import { resolvePrometheus } from './provision-prometheus';
import { resolveRedisServer } from './provision-redis';
import { resolveTemporalCli } from './provision-temporal';
import { resolveToxiproxyServer } from './provision-toxiproxy';

export { atelierCacheDir, findOnPath, ProvisionError, type ProvisionOptions } from './provision-common';
export { resolvePrometheus, type PrometheusBinaries } from './provision-prometheus';
export { resolveRedisServer } from './provision-redis';
export { cachedTemporalCliPath, resolveTemporalCli, TEMPORAL_CLI_VERSION } from './provision-temporal';
export { cachedToxiproxyServerPath, resolveToxiproxyServer, TOXIPROXY_VERSION } from './provision-toxiproxy';

async function main(): Promise<void> {
  const temporal = await resolveTemporalCli();
  const redis = await resolveRedisServer();
  const prom = await resolvePrometheus();
  const toxiproxy = await resolveToxiproxyServer();
  process.stdout.write(`TEMPORAL_CLI_PATH=${temporal}\nREDIS_SERVER_PATH=${redis}\n`);
  process.stdout.write(`PROMETHEUS_PATH=${prom.prometheus}\nPROMTOOL_PATH=${prom.promtool}\n`);
  process.stdout.write(`TOXIPROXY_SERVER_PATH=${toxiproxy}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    const message =
      err instanceof ProvisionError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`${message}\n`);
    process.exit(1);
  });
}
