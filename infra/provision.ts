// Finds, and on a fresh machine installs, the two native binaries that the local stack and the tests run: the
// Temporal CLI (its `server start-dev` is our Temporal) and redis-server. Nothing is committed to the repository:
// installs go to a per-user cache directory (or the system package manager for Redis).
//
// `node dist/infra/provision.js` resolves both and prints their paths. The work is in provision-temporal.ts,
// provision-redis.ts and what they share; importers use this module.
import { ProvisionError } from './provision-common';
import { resolveRedisServer } from './provision-redis';
import { resolveTemporalCli } from './provision-temporal';

export { atelierCacheDir, findOnPath, ProvisionError, type ProvisionOptions } from './provision-common';
export { resolveRedisServer } from './provision-redis';
export { cachedTemporalCliPath, resolveTemporalCli, TEMPORAL_CLI_VERSION } from './provision-temporal';

async function main(): Promise<void> {
  const temporal = await resolveTemporalCli();
  const redis = await resolveRedisServer();
  process.stdout.write(`TEMPORAL_CLI_PATH=${temporal}\nREDIS_SERVER_PATH=${redis}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    const message =
      err instanceof ProvisionError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`${message}\n`);
    process.exit(1);
  });
}
