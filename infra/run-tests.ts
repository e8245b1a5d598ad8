// `npm test`: provisions the Temporal CLI and redis-server (so a fresh machine or CI runner sets itself up), starts
// a private Redis for the run, then runs test/**/*.test.ts with node's test runner, one file at a time.
//
//   npm test                          every test file
//   npm test -- test/infra            files under a directory
//   npm test -- test/infra/x.test.ts  one file
//   npm test -- gateway               files whose path contains "gateway"
//   npm test -- --test-name-pattern=replay   extra flags go to `node --test`
import { spawn } from 'node:child_process';
import { existsSync, promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { killChildrenOnExit } from './processes';
import { resolveRedisServer, resolveTemporalCli } from './provision';
import { startEphemeralRedis } from './redis-server';
import { repoRoot } from './stack';

/**
 * Per-test timeout, ms. Generous because end-to-end tests start a whole stack on a small shared machine; a hung
 * test still fails long before CI's own limit.
 */
const TEST_TIMEOUT_MS = 300_000;

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
export async function selectTestFiles(root: string, filters: string[]): Promise<string[]> {
  const all = await findTestFiles(path.join(root, 'test'));
  if (filters.length === 0) return all;
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

async function main(argv: string[]): Promise<number> {
  const root = repoRoot();
  const nodeTestFlags = argv.filter((a) => a.startsWith('--'));
  const filters = argv.filter((a) => !a.startsWith('--'));
  const files = await selectTestFiles(root, filters);
  if (files.length === 0) {
    process.stderr.write(`No test files match ${filters.length > 0 ? filters.join(' ') : 'test/**/*.test.ts'}\n`);
    return 1;
  }

  const log = (line: string): void => void process.stderr.write(`[provision] ${line}\n`);
  const temporalCli = await resolveTemporalCli({ log });
  const redisServer = await resolveRedisServer({ log });
  killChildrenOnExit();
  const redis = await startEphemeralRedis();
  process.stderr.write(`[test] Temporal CLI ${temporalCli}\n[test] redis-server ${redisServer} on ${redis.url}\n[test] ${files.length} test file(s)\n`);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_CLI_PATH: temporalCli,
    REDIS_SERVER_PATH: redisServer,
    REDIS_URL: redis.url,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const args = [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    `--test-timeout=${TEST_TIMEOUT_MS}`,
    ...nodeTestFlags,
    ...files.map((f) => path.relative(root, f)),
  ];
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
      const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        process.off('SIGINT', forward);
        process.off('SIGTERM', forward);
        resolve(code ?? (signal ? 128 + signalNumber(signal) : 1));
      });
    });
  } finally {
    await redis.stop();
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : signal === 'SIGKILL' ? 9 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`npm test failed before running tests: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
