// A private PostgreSQL for the Temporal cluster of `npm run stack:cluster` and its test: initdb a data dir once,
// run `postgres` in the foreground on loopback and a free (or given) port, wait until it accepts connections, stop
// it with a fast shutdown. Trust authentication on 127.0.0.1 only: nothing but this machine can reach it. PostgreSQL
// refuses to run as root, so as root it runs as the `postgres` system user (created by Debian's package).
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../runtime/logger';
import { freePort, portAcceptsConnections } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { errorMessage, execFileAsync } from './provision-common';
import { resolvePostgres, type PostgresBinaries } from './provision-postgres';

export interface StartPostgresOptions {
  /** The cluster's folder: initialised with initdb when it holds none yet, reused (with its data) otherwise. */
  dataDir: string;
  /** Port on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /**
   * `max_connections`. Temporal opens a pool per service and store (see infra/temporal-server.ts), more than
   * PostgreSQL's default 100 allows once the schema tool and a psql are added.
   * @default 200
   */
  maxConnections?: number;
  log: Logger;
  /** Receives each line postgres prints. @default lines go to `log.debug` */
  onOutput?: (line: string) => void;
  /** How long to wait for the server to accept connections, ms. @default 30 000 */
  readyTimeoutMs?: number;
  /** Programs to run. @default resolvePostgres() (which may apt-get install them) */
  binaries?: PostgresBinaries;
}

export interface PostgresHandle {
  readonly host: string;
  readonly port: number;
  /** The superuser initdb created; trust authentication, so no password. */
  readonly user: string;
  /** The cluster's folder: `opts.dataDir`, unless the `postgres` user could not reach it (see startPostgres). */
  readonly dataDir: string;
  readonly process: ServiceProcess['process'];
  readonly exited: ServiceProcess['exited'];
  /** Runs `sql` with psql in `database` (default `postgres`) and returns its unaligned, tuples-only output. */
  query(sql: string, database?: string): Promise<string>;
  /** Fast shutdown (SIGINT: disconnect clients, checkpoint), SIGKILL after 30 s. Safe to call twice. */
  stop(): Promise<void>;
}

/** Thrown when initdb fails, or postgres exits during start-up or does not accept connections in time. */
export class PostgresStartError extends Error {
  override readonly name = 'PostgresStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const SUPERUSER = 'postgres';
const HOST = '127.0.0.1';
/** The system user PostgreSQL runs as when we are root. */
const SYSTEM_USER = 'postgres';

/**
 * Starts PostgreSQL on `opts.dataDir` and resolves once it accepts connections. As root, the server runs as the
 * `postgres` user and the folder is handed to it; when a folder above `dataDir` is closed to other users (a repo
 * under /root), the cluster lives in that user's home instead, in a folder named after `dataDir` so a restart
 * finds it again, and `dataDir` of the handle says where.
 */
export async function startPostgres(opts: StartPostgresOptions): Promise<PostgresHandle> {
  const binaries = opts.binaries ?? (await resolvePostgres({ log: (line) => opts.log.info(line) }));
  const port = opts.port || (await freePort());
  if (await portAcceptsConnections(HOST, port)) {
    throw new PostgresStartError(`Cannot start PostgreSQL on ${HOST}:${port}: something already listens there.`);
  }
  const runAs = process.getuid?.() === 0 ? SYSTEM_USER : undefined;
  const dataDir = await prepareDataDir(path.resolve(opts.dataDir), runAs, opts.log);
  await initdbOnce(binaries, dataDir, runAs, opts.log);

  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-c',
    `listen_addresses=${HOST}`,
    // TCP only: a socket in /var/run/postgresql needs that folder, and one in the data dir a short path.
    '-c',
    'unix_socket_directories=',
    '-c',
    `max_connections=${opts.maxConnections ?? 200}`,
  ];
  const [command, ...commandArgs] = [...asUser(runAs, true), binaries.postgres, ...args] as [string, ...string[]];
  opts.log.debug({ command, args: commandArgs }, 'starting postgres');
  const server = spawnService({
    name: 'postgres',
    command,
    args: commandArgs,
    onLine: opts.onOutput ?? ((line) => opts.log.debug({ postgres: line }, 'postgres output')),
    ownProcessGroup: true,
  });
  const stop = async (): Promise<void> => void (await server.stop({ signal: 'SIGINT', graceMs: 30_000 }));
  try {
    await waitUntilReady(binaries, port, server, opts.readyTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  opts.log.info({ port, dataDir, major: binaries.major }, 'PostgreSQL is ready');
  return {
    host: HOST,
    port,
    user: SUPERUSER,
    dataDir,
    process: server.process,
    exited: server.exited,
    query: (sql, database = 'postgres') => psql(binaries, port, database, sql),
    stop,
  };
}

async function psql(binaries: PostgresBinaries, port: number, database: string, sql: string): Promise<string> {
  const args = ['-h', HOST, '-p', String(port), '-U', SUPERUSER, '-d', database, '-X', '-q', '-tA'];
  const { stdout } = await execFileAsync(binaries.psql, [...args, '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    timeout: 60_000,
  });
  return stdout.trim();
}

/**
 * Command prefix that runs a program as `user` (nothing when undefined). setpriv switches user and then execs,
 * so the pid is the server's and signals reach it; with `dieWithParent`, it also dies with us.
 */
function asUser(user: string | undefined, dieWithParent: boolean): string[] {
  const prefix = dieWithParent ? dieWithParentPrefix() : [];
  if (user === undefined) return prefix;
  const setpriv = prefix[0] ?? '/usr/bin/setpriv';
  const pdeath = prefix.length > 0 ? ['--pdeathsig', 'SIGTERM'] : [];
  return [setpriv, ...pdeath, `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--'];
}

/**
 * Creates the cluster's folder and, as root, hands it to `runAs`. Returns where the cluster lives: `dataDir`, or,
 * when `runAs` cannot reach it, a folder in that user's home named after `dataDir`.
 */
async function prepareDataDir(dataDir: string, runAs: string | undefined, log: Logger): Promise<string> {
  // Folders above it get the default mode, so another user can pass through them.
  await fs.mkdir(path.dirname(dataDir), { recursive: true });
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (runAs === undefined) return dataDir;
  const { uid, gid, home } = await systemUser(runAs);
  if (await canEnter(runAs, path.dirname(dataDir))) {
    await fs.chown(dataDir, uid, gid);
    await fs.chmod(dataDir, 0o700);
    return dataDir;
  }
  const key = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  const moved = path.join(home, 'atelier', `${path.basename(dataDir)}-${key}`);
  log.warn(
    { requested: dataDir, dataDir: moved },
    `the ${runAs} user cannot reach the requested PostgreSQL data dir (a folder above it is closed to other users); using one in its home`,
  );
  await fs.mkdir(moved, { recursive: true, mode: 0o700 });
  await fs.chown(path.dirname(moved), uid, gid);
  await fs.chown(moved, uid, gid);
  return moved;
}

async function systemUser(user: string): Promise<{ uid: number; gid: number; home: string }> {
  let line: string;
  try {
    ({ stdout: line } = await execFileAsync('getent', ['passwd', user], { timeout: 10_000 }));
  } catch (err) {
    throw new PostgresStartError(
      `PostgreSQL refuses to run as root, and there is no ${user} user to run it as (${errorMessage(err)}); ` +
        `install Debian's postgresql package (it creates the user) or run as another user.`,
      { cause: err },
    );
  }
  const fields = line.trim().split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? '/var/lib/postgresql' };
}

/** True when `user` can enter `dir` (every folder above it searchable by them). */
async function canEnter(user: string, dir: string): Promise<boolean> {
  const [command, ...args] = [...asUser(user, false), 'test', '-x', dir];
  return execFileAsync(command ?? 'test', args, { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
}

/** Runs initdb unless the folder already holds a cluster (PG_VERSION is the first thing initdb writes). */
async function initdbOnce(
  binaries: PostgresBinaries,
  dataDir: string,
  runAs: string | undefined,
  log: Logger,
): Promise<void> {
  const existing = await fs.readFile(path.join(dataDir, 'PG_VERSION'), 'utf8').catch(() => undefined);
  if (existing !== undefined) {
    if (Number(existing.trim()) !== binaries.major) {
      throw new PostgresStartError(
        `${dataDir} holds a PostgreSQL ${existing.trim()} cluster, but the server found is ${binaries.major}; ` +
          'remove the folder to start afresh, or set POSTGRES_BIN_DIR to that release.',
      );
    }
    return;
  }
  const args = ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C'];
  const [command, ...commandArgs] = [...asUser(runAs, false), binaries.initdb, ...args] as [string, ...string[]];
  log.info({ dataDir }, 'creating a PostgreSQL cluster with initdb');
  try {
    await execFileAsync(command, commandArgs, { timeout: 120_000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new PostgresStartError(`initdb of ${dataDir} failed: ${errorMessage(err)}\n${stderr}`, { cause: err });
  }
}

async function waitUntilReady(
  binaries: PostgresBinaries,
  port: number,
  server: ServiceProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new PostgresStartError(
        `postgres on port ${port} exited during start-up (${exit.signal ?? `code ${exit.code}`}). Its last output:\n${server.outputTail()}`,
      );
    }
    const ready = await execFileAsync(binaries.pgIsReady, ['-h', HOST, '-p', String(port), '-t', '1'], {
      timeout: 5_000,
    }).then(
      () => true,
      () => false,
    );
    if (ready) return;
    await delay(200);
  }
  throw new PostgresStartError(
    `postgres on port ${port} did not accept connections within ${timeoutMs} ms. Its last output:\n${server.outputTail()}`,
  );
}
