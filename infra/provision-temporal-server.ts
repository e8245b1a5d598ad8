// Finds or builds the binaries of a real Temporal cluster (infra/temporal-server.ts runs them on PostgreSQL):
// `temporal-server` (go.temporal.io/server/cmd/server) and its schema tool `temporal-sql-tool`
// (go.temporal.io/server/cmd/tools/sql), at the same pinned release. Each is looked for the way every pinned Go
// tool of the project is (provision-binary.ts): an explicit path from the environment, PATH, the per-user cache,
// then `go install` into the cache under a lock. Temporal publishes no plain binary of either, only archives on
// GitHub, so without Go the answer is instructions. setupTemporalSchema applies the tool's SQL schemas to a database:
// they need no files, the tool embeds them (`--schema-name postgresql/v12/temporal`), so they always match the
// server they were built with.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  atelierCacheDir,
  checkExecutable,
  errorMessage,
  execFileAsync,
  exeSuffix,
  ProvisionError,
  runStreaming,
  type ProvisionOptions,
} from './provision-common';
import { resolvePinnedBinary, type PinnedBinary } from './provision-binary';
import type { Logger } from '../runtime/logger';
import type { PostgresHandle } from './postgres';

/**
 * Temporal Server release of `npm run stack:cluster`: the one the pinned Temporal CLI (1.5.1) embeds as its dev
 * server, so the cluster and the dev server differ in storage and topology, not in features or bugs.
 */
export const TEMPORAL_SERVER_VERSION = '1.29.1';
const SERVER_MODULE = 'go.temporal.io/server';
/** Temporal's databases in its PostgreSQL: workflows, and visibility (what List/CountWorkflowExecutions read). */
export const DATABASE = 'temporal';
export const VISIBILITY_DATABASE = 'temporal_visibility';

/** The two binaries of a Temporal cluster on SQL. */
export interface TemporalServerBinaries {
  /** `temporal-server`: every service (frontend, history, matching, worker) in one process or one each. */
  readonly server: string;
  /** `temporal-sql-tool`: creates databases and applies the embedded, versioned schemas. */
  readonly sqlTool: string;
}

interface ToolSpec {
  readonly label: string;
  readonly command: string;
  readonly envVar: string;
  /** Package path inside the module; `go install` names the binary after its last element. */
  readonly pkg: string;
}

const SERVER: ToolSpec = {
  label: 'temporal-server',
  command: 'temporal-server',
  envVar: 'TEMPORAL_SERVER_PATH',
  pkg: 'cmd/server',
};
const SQL_TOOL: ToolSpec = {
  label: 'temporal-sql-tool',
  command: 'temporal-sql-tool',
  envVar: 'TEMPORAL_SQL_TOOL_PATH',
  pkg: 'cmd/tools/sql',
};

/** Where the cached build of `tool` lives. */
function cachedToolPath(tool: ToolSpec, env: NodeJS.ProcessEnv): string {
  return path.join(atelierCacheDir(env), 'bin', `${tool.command}${exeSuffix}`);
}

/**
 * Paths of a working temporal-server and temporal-sql-tool, both {@link TEMPORAL_SERVER_VERSION}. Order for each:
 * env TEMPORAL_SERVER_PATH / TEMPORAL_SQL_TOOL_PATH (a bad explicit path is an error), PATH, the cache, then
 * `go install` into the cache. The first build takes minutes; a lock keeps concurrent test processes from
 * building it twice. Throws
 * {@link ProvisionError} with instructions when neither a binary nor Go is there.
 */
export async function resolveTemporalServer(opts: ProvisionOptions = {}): Promise<TemporalServerBinaries> {
  // One after the other: building the server builds the tool alongside (they share most packages), so the
  // tool's own resolution then finds it in the cache.
  const server = await resolvePinnedBinary(pinnedTool(SERVER, [SERVER, SQL_TOOL]), opts);
  const sqlTool = await resolvePinnedBinary(pinnedTool(SQL_TOOL, [SQL_TOOL]), opts);
  return { server, sqlTool };
}

/** How resolvePinnedBinary finds, checks and builds `tool`; building it also builds `alongside`. */
function pinnedTool(tool: ToolSpec, alongside: readonly ToolSpec[]): PinnedBinary {
  return {
    label: tool.label,
    envVar: tool.envVar,
    command: tool.command,
    version: TEMPORAL_SERVER_VERSION,
    cachedPath: (env) => cachedToolPath(tool, env),
    // Any binary must be the pinned release: the schema it applies and the config it reads are version-specific.
    check: (binary) => checkTemporalTool(binary),
    goInstall: (go, _target, env, log) => goInstallTools(go, alongside, env, log),
    download: () =>
      Promise.reject(new Error(`Temporal publishes no single-file ${tool.command}; build it with Go (go.dev/dl)`)),
    instructions: (cached) => installInstructions(tool, cached),
  };
}

function installInstructions(tool: ToolSpec, cached: string): string {
  return [
    `${tool.label} ${TEMPORAL_SERVER_VERSION} not found (looked at ${tool.envVar}, \`${tool.command}\` on PATH ` +
      `and ${cached}). Install it with one of:`,
    `  - Go 1.25 or newer (https://go.dev/dl), then run this again: Atelier builds it into ${path.dirname(cached)}`,
    `  - CGO_ENABLED=0 GOBIN=/tmp/temporal go install ${SERVER_MODULE}/${tool.pkg}@v${TEMPORAL_SERVER_VERSION}, ` +
      `then move /tmp/temporal/${path.basename(tool.pkg)} to ${cached}`,
    `  - Or set ${tool.envVar} to an existing ${tool.command} ${TEMPORAL_SERVER_VERSION} binary ` +
      '(e.g. from the release archive on github.com/temporalio/temporal).',
  ].join('\n');
}

/**
 * Returns why `binary` is not a usable temporal-server / temporal-sql-tool of the pinned release, or undefined.
 * Both print `<name> version <server version>` for `--version`.
 */
async function checkTemporalTool(binary: string): Promise<string | undefined> {
  const problem = await checkExecutable(binary);
  if (problem) return problem;
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(binary, ['--version'], { timeout: 30_000 }));
  } catch (err) {
    return `\`${binary} --version\` failed: ${errorMessage(err)}`;
  }
  const reported = /version v?(\d+\.\d+\.\d+\S*)/.exec(stdout)?.[1];
  if (reported === undefined) return `\`${binary} --version\` printed ${JSON.stringify(stdout.trim())}`;
  if (reported !== TEMPORAL_SERVER_VERSION) return `it is ${reported}, not ${TEMPORAL_SERVER_VERSION}`;
  return undefined;
}

/**
 * `go install` of `tools` in one build (they share most of the module's packages), into a private folder, then
 * renamed into the cache: `go install` names binaries after their package folder (`server`, `sql`), and a
 * concurrent reader must never see a half-written binary.
 */
async function goInstallTools(
  go: string,
  tools: readonly ToolSpec[],
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  const binDir = path.join(atelierCacheDir(env), 'bin');
  const buildDir = path.join(binDir, `.temporal-server-build-${process.pid}`);
  await fs.mkdir(buildDir, { recursive: true });
  const names = tools.map((t) => t.command).join(' and ');
  log(`building ${names} v${TEMPORAL_SERVER_VERSION} with ${go} into ${binDir} (several minutes the first time)`);
  const started = Date.now();
  try {
    const packages = tools.map((t) => `${SERVER_MODULE}/${t.pkg}@v${TEMPORAL_SERVER_VERSION}`);
    // The SQLite driver and everything else the server links is pure Go, so no C toolchain is needed.
    await runStreaming(go, ['install', ...packages], { ...env, CGO_ENABLED: '0', GOBIN: buildDir }, log);
    for (const tool of tools) {
      await fs.rename(path.join(buildDir, `${path.basename(tool.pkg)}${exeSuffix}`), cachedToolPath(tool, env));
    }
    log(`installed ${names} ${TEMPORAL_SERVER_VERSION} in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    await fs.rm(buildDir, { recursive: true, force: true });
  }
}

/**
 * Creates and migrates Temporal's databases with temporal-sql-tool: a database without the versioning tables gets
 * them (`setup-schema -v 0.0`), then every database is brought to the tool's schema (`update-schema`, a no-op when
 * current). The schemas are embedded in the tool, so they always match the server of the same release.
 */
export async function setupTemporalSchema(postgres: PostgresHandle, sqlTool: string, log: Logger): Promise<void> {
  const schemas = [
    { database: DATABASE, schema: 'postgresql/v12/temporal' },
    { database: VISIBILITY_DATABASE, schema: 'postgresql/v12/visibility' },
  ];
  for (const { database, schema } of schemas) {
    const exists = await postgres.query(`SELECT 1 FROM pg_database WHERE datname = '${database}'`);
    const sql = (command: string[]): Promise<unknown> =>
      runSqlTool(sqlTool, [
        ...['--plugin', 'postgres12', '--ep', postgres.host, '--port', String(postgres.port)],
        ...['--user', postgres.user, '--db', database, ...command],
      ]);
    if (exists !== '1') {
      log.info({ database }, 'creating a Temporal database');
      await postgres.query(`CREATE DATABASE ${database}`);
    }
    // Decided by the versioning table rather than the database, so a start cut short after CREATE DATABASE
    // recovers; setup-schema on a set-up database would reset its recorded version.
    const versioned = await postgres.query("SELECT to_regclass('schema_version') IS NOT NULL", database);
    if (versioned !== 't') await sql(['setup-schema', '-v', '0.0']);
    await sql(['update-schema', '--schema-name', schema]);
  }
}

async function runSqlTool(sqlTool: string, args: string[]): Promise<void> {
  try {
    await execFileAsync(sqlTool, args, { timeout: 300_000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new ProvisionError(`temporal-sql-tool ${args.join(' ')} failed: ${errorMessage(err)}\n${stderr}`, {
      cause: err,
    });
  }
}
