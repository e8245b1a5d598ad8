// `npm run stack:cluster` (issue 14): the processes of `npm start` (gateway, control worker, GPU workers) against the
// distributed engines a deployment runs instead of the single-process ones: a Temporal server built from
// go.temporal.io/server on PostgreSQL from Debian's packages, with SQL visibility and Atelier's search attributes
// (infra/temporal-server.ts), and a three-master Redis Cluster from Debian's redis-server (infra/redis-cluster.ts).
// The stack launcher attaches to both as it attaches to any Temporal or Redis that answers at its addresses.
//
//   npm run stack:cluster               runs it in the foreground until Ctrl-C (data in .atelier-cluster)
//   npm run stack:cluster -- --check    starts it, runs one request end to end through the gateway, checks that the
//                                       request is in PostgreSQL's visibility and its keys on more than one Redis
//                                       master, stops, and exits 0 or 1 (what .ci/run's cluster step proves)
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createLogger, type Logger } from '../runtime/logger';
import { formatOptionHelp, resolveOptions } from '../runtime/options';
import { startRedisCluster, type RedisCluster } from './redis-cluster';
import { repoRoot } from './repo-root';
import { checkClusterStack } from './stack-cluster-check';
import { launchStack, type LaunchContext, type StackHandle } from './stack';
import { STACK_OPTIONS, type StackOptions } from './stack-options';
import { startTemporalCluster, type TemporalCluster } from './temporal-server';

/** Where stack:cluster keeps its data unless ATELIER_DATA_DIR says otherwise (not npm start's: other engines). */
export const CLUSTER_DATA_DIR = '.atelier-cluster';

export interface ClusterStack {
  readonly stack: StackHandle;
  readonly temporal: TemporalCluster;
  readonly redis: RedisCluster;
  /** Stops the stack (gateway, then workers draining), then Redis Cluster, then Temporal and PostgreSQL. */
  stop(): Promise<void>;
}

/** Starts PostgreSQL and the Temporal server, the Redis Cluster, then the stack on them; stops what it started on failure. */
export async function launchClusterStack(options: StackOptions, ctx: LaunchContext): Promise<ClusterStack> {
  const dataDir = path.resolve(repoRoot(), options.dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  // As root, PostgreSQL runs as the postgres user, which must be able to pass through the data directory.
  await fs.chmod(dataDir, 0o755).catch(() => undefined);
  const temporal = await startTemporalCluster({
    dataDir: path.join(dataDir, 'temporal-cluster'),
    namespace: options.temporalNamespace,
    log: ctx.log,
  });
  let redis: RedisCluster | undefined;
  try {
    redis = await startRedisCluster({ dir: path.join(dataDir, 'redis-cluster'), log: ctx.log });
    const stack = await launchStack(
      {
        ...options,
        dataDir,
        temporalAddress: temporal.address,
        temporalNamespace: temporal.namespace,
        redisUrl: redis.url,
        // The dev server's Web UI is not part of a Temporal server; use the UI of your deployment's chart.
        temporalUiPort: 0,
      },
      ctx,
    );
    const engines = redis;
    return {
      stack,
      temporal,
      redis: engines,
      async stop() {
        await stack.stop();
        await engines.stop();
        await temporal.stop();
      },
    };
  } catch (err) {
    await redis?.stop().catch(() => undefined);
    await temporal.stop().catch(() => undefined);
    throw err;
  }
}

function banner(c: ClusterStack): string {
  return [
    '',
    'Atelier is up on the cluster engines.',
    `  WebSocket API    ${c.stack.gatewayWsUrl}`,
    `  HTTP API         ${c.stack.gatewayHttpUrl}`,
    `  Temporal server  ${c.temporal.address} (namespace ${c.temporal.namespace}; PostgreSQL on port ${c.temporal.postgres.port}, SQL visibility)`,
    `  Temporal metrics ${c.temporal.metricsUrl}`,
    `  Redis Cluster    ${c.redis.url}`,
    `  API key          ${c.stack.apiKey}`,
    `  Data             ${c.stack.dataDir} (stack.json lists every process; bench:load -- --attach takes it)`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ].join('\n');
}

function stopOnSignal(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down: the stack, then Redis Cluster, then Temporal and PostgreSQL');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    const title =
      'npm run stack:cluster [-- --check] — Atelier on a Temporal server on PostgreSQL and a Redis Cluster.';
    process.stdout.write(formatOptionHelp(title, STACK_OPTIONS));
    return 0;
  }
  const check = argv.includes('--check');
  const env = { ATELIER_DATA_DIR: CLUSTER_DATA_DIR, ...(check ? { PROMETHEUS_PORT: '0' } : {}), ...process.env };
  const options = resolveOptions(STACK_OPTIONS, env);
  const log = createLogger('stack-cluster', {}, options.logLevel);
  const ctx: LaunchContext = {
    log,
    extraEnv: {},
    onOutput: (name, line) => void process.stdout.write(`${name.padEnd(18)} | ${line}\n`),
  };
  const cluster = await launchClusterStack(options, ctx);
  if (!check) {
    stopOnSignal(log, () => cluster.stop());
    process.stdout.write(`${banner(cluster)}\n`);
    return new Promise<number>(() => undefined);
  }
  try {
    const result = await checkClusterStack(cluster);
    process.stdout.write(`${result.lines.join('\n')}\n${JSON.stringify(result.json)}\n`);
    return result.json.pass ? 0 : 1;
  } finally {
    await cluster.stop();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      if (code !== 0 || process.argv.includes('--check')) setTimeout(() => process.exit(code), 100).unref();
    },
    (err: unknown) => {
      process.stderr.write(`\nstack:cluster failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
      setTimeout(() => process.exit(1), 100).unref();
    },
  );
}
