// `npm test` and `npm run test:unit`. The full run provisions the Temporal CLI and redis-server (so a fresh machine or
// CI runner sets itself up), starts a private Redis, then runs test/**/*.test.ts one file at a time; the unit tier
// runs only the files that need neither Temporal nor Redis, and starts nothing.
//
//   npm test                          every test file
//   npm test -- test/infra            files under a directory
//   npm test -- test/infra/x.test.ts  one file
//   npm test -- gateway               files whose path contains "gateway"
//   npm test -- --test-name-pattern=replay   extra flags go to `node --test`
//   npm run test:unit                 the unit tier (UNIT_TIER below), in well under a minute
//   npm run test:cluster              the cluster tier (CLUSTER_TIER): the same processes on a Temporal server built
//                                     from go.temporal.io/server on PostgreSQL and a Redis Cluster; .ci/run runs it
//                                     after `npm test`, since a first build of the server takes minutes
//
// Each file runs in its own `node --test` process group with a wall-clock limit. A file whose process outlives
// it (a teardown that never finishes, a handler that swallows SIGTERM) is killed, and the run names the file and
// the handles that kept each of its processes alive, read from a Node diagnostic report taken just before.
import { existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killChildrenOnExit } from './processes';
import { resolvePrometheus, resolveRedisServer, resolveTemporalCli } from './provision';
import { resolveKubeconform } from './provision-kubeconform';
import { resolveKustomize } from './provision-kustomize';
import { resolvePostgres } from './provision-postgres';
import { resolveTemporalServer } from './provision-temporal-server';
import { startEphemeralRedis } from './redis-server';
import { repoRoot } from './repo-root';
import { runTestFile, type FileOutcome } from './test-file-runner';

/**
 * Per-test timeout, ms; with `node --test` it also bounds each file as a whole. Generous because end-to-end tests
 * start a whole stack on a small shared machine.
 */
const TEST_TIMEOUT_MS = 300_000;
/** Wall-clock limit of one file's processes: the runner's own timeout plus time to report and exit. */
const FILE_LIMIT_MS = Number(process.env.ATELIER_TEST_FILE_LIMIT_MS ?? TEST_TIMEOUT_MS + 60_000);

/** The fast tier: tests that need no Temporal server and no Redis (folders or files under test/). */
export const UNIT_TIER: readonly string[] = [
  'test/unit',
  'test/inference',
  'test/replay',
  'test/activities/safety.test.ts',
  'test/activities/simulated-backend.test.ts',
  'test/activities/storage.test.ts',
  'test/gateway/units.test.ts',
  'test/runtime/object-store.test.ts',
  'test/infra/lockfile.test.ts',
];

/**
 * The cluster tier: tests of the distributed engines (issue 14), left out of a plain `npm test` (a first build of the
 * Temporal server takes about 7 minutes on two cores) and run by `npm run test:cluster`, or by naming them.
 */
export const CLUSTER_TIER: readonly string[] = ['test/cluster'];

/** The test that needs kubeconform and kustomize (built with `go install` on a fresh machine). */
const MANIFEST_TEST = path.join('test', 'infra', 'k8s-manifests.test.ts');

/** Every `*.test.ts` under `dir`, sorted so runs are reproducible. */
async function findTestFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && !entry.name.startsWith('.')) out.push(...(await findTestFiles(full)));
    } else if (entry.name.endsWith('.test.ts')) {
      out.push(full);
    }
  }
  return out.sort();
}

/**
 * The files a run covers. Each filter is an existing file, an existing directory (all test files under it), or a
 * substring of the path relative to the repo root. No filters: everything under test/.
 */
export async function selectTestFiles(root: string, filters: readonly string[]): Promise<string[]> {
  const all = await findTestFiles(path.join(root, 'test'));
  const clusterDirs = CLUSTER_TIER.map((dir) => path.join(root, dir) + path.sep);
  if (filters.length === 0) return all.filter((f) => !clusterDirs.some((dir) => f.startsWith(dir)));
  const selected = new Set<string>();
  for (const filter of filters) {
    const asPath = path.resolve(root, filter);
    if (existsSync(asPath) && statSync(asPath).isDirectory()) {
      for (const f of await findTestFiles(asPath)) selected.add(f);
    } else if (existsSync(asPath) && asPath.endsWith('.ts')) {
      selected.add(asPath);
    } else {
      for (const f of all) if (path.relative(root, f).includes(filter)) selected.add(f);
    }
  }
  return [...selected].sort();
}

/** Environment of the test files: the servers of a full run, or, for the unit tier, addresses where nothing answers. */
async function prepareServers(
  unit: boolean,
  needs: { readonly cluster: boolean; readonly manifests: boolean },
): Promise<{ env: NodeJS.ProcessEnv; stop: () => Promise<void> }> {
  const base: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' };
  if (unit) {
    // A unit-tier test that reaches for Redis or Temporal fails at once instead of passing on a developer's servers.
    delete base.TEMPORAL_CLI_PATH;
    return {
      env: { ...base, REDIS_URL: 'redis://127.0.0.1:1', TEMPORAL_ADDRESS: '127.0.0.1:1' },
      stop: () => Promise.resolve(),
    };
  }
  const log = (line: string): void => void process.stderr.write(`[provision] ${line}\n`);
  const temporalCli = await resolveTemporalCli({ log });
  const redisServer = await resolveRedisServer({ log });
  const prom = await resolvePrometheus({ log });
  // Built here rather than inside a test file's time limit, and only for a run that has the files needing them:
  // kubeconform and kustomize for the manifest test, the Temporal server and PostgreSQL for the cluster tier.
  const toolEnv: NodeJS.ProcessEnv = {};
  if (needs.manifests) {
    const [kubeconform, kustomize] = await Promise.all([resolveKubeconform({ log }), resolveKustomize({ log })]);
    Object.assign(toolEnv, { KUBECONFORM_PATH: kubeconform, KUSTOMIZE_PATH: kustomize });
  }
  if (needs.cluster) {
    const postgres = await resolvePostgres({ log });
    const server = await resolveTemporalServer({ log });
    Object.assign(toolEnv, {
      POSTGRES_BIN_DIR: postgres.binDir,
      TEMPORAL_SERVER_PATH: server.server,
      TEMPORAL_SQL_TOOL_PATH: server.sqlTool,
    });
  }
  killChildrenOnExit();
  const redis = await startEphemeralRedis();
  process.stderr.write(`[test] Temporal CLI ${temporalCli}\n[test] redis-server ${redisServer} on ${redis.url}\n`);
  return {
    env: {
      ...base,
      TEMPORAL_CLI_PATH: temporalCli,
      REDIS_SERVER_PATH: redisServer,
      REDIS_URL: redis.url,
      PROMETHEUS_PATH: prom.prometheus,
      PROMTOOL_PATH: prom.promtool,
      ...toolEnv,
    },
    stop: () => redis.stop(),
  };
}

function summarize(outcomes: readonly FileOutcome[], startedAt: number): string {
  const total = { tests: 0, pass: 0, fail: 0, cancelled: 0 };
  for (const o of outcomes) for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += o.counts[k];
  const failed = outcomes.filter((o) => !o.passed);
  const lines = [
    '',
    `[test] ${outcomes.length} file(s), ${total.tests} tests: ${total.pass} passed, ${total.fail} failed, ` +
      `${total.cancelled} cancelled, in ${Math.round((Date.now() - startedAt) / 1000)} s`,
    ...failed.map(
      (o) =>
        `[test] FAILED ${o.file}${o.killedAfterMs ? ` (killed after ${Math.round(o.killedAfterMs / 1000)} s)` : ''}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const root = repoRoot();
  const unit = argv.includes('--unit');
  const cluster = argv.includes('--cluster');
  const nodeTestFlags = argv.filter((a) => a.startsWith('--') && a !== '--unit' && a !== '--cluster');
  const filters = argv.filter((a) => !a.startsWith('--'));
  const tier = unit ? UNIT_TIER : cluster ? CLUSTER_TIER : [];
  const files = await selectTestFiles(root, filters.length === 0 ? tier : filters);
  // Naming a cluster test runs it with the cluster tier's servers.
  const needsCluster = cluster || files.some((f) => CLUSTER_TIER.some((dir) => f.startsWith(path.join(root, dir))));
  if (files.length === 0) {
    process.stderr.write(`No test files match ${filters.length > 0 ? filters.join(' ') : 'test/**/*.test.ts'}\n`);
    return 1;
  }
  const startedAt = Date.now();
  const manifests = files.some((f) => f.endsWith(MANIFEST_TEST));
  const servers = await prepareServers(unit, { cluster: needsCluster, manifests });
  const reportDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-test-reports-'));
  process.stderr.write(`[test] ${files.length} test file(s)${unit ? ' (unit tier: no Temporal, no Redis)' : ''}\n`);
  const outcomes: FileOutcome[] = [];
  // Each file runs in its own process group, which a terminal's Ctrl-C does not reach: pass it on.
  const interrupt = new AbortController();
  const stopAll = (): void => interrupt.abort();
  process.once('SIGINT', stopAll);
  process.once('SIGTERM', stopAll);
  try {
    for (const file of files) {
      if (interrupt.signal.aborted) break;
      outcomes.push(
        await runTestFile({
          root,
          file: path.relative(root, file),
          env: servers.env,
          nodeArgs: ['--import', 'tsx', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...nodeTestFlags],
          limitMs: FILE_LIMIT_MS,
          reportDir,
          signal: interrupt.signal,
        }),
      );
    }
  } finally {
    await servers.stop();
    await fs.rm(reportDir, { recursive: true, force: true });
  }
  process.stderr.write(summarize(outcomes, startedAt));
  return interrupt.signal.aborted ? 130 : outcomes.every((o) => o.passed) ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `npm test failed before running tests: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
