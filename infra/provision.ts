// Finds, and on a fresh machine installs, the two native binaries that the local stack and the tests run: the
// Temporal CLI (its `server start-dev` is our Temporal) and redis-server. Nothing is committed to the repository:
// installs go to a per-user cache directory (or the system package manager for Redis).
//
// `node dist/infra/provision.js` resolves both and prints their paths.
import { execFile, spawn } from 'node:child_process';
import { constants as fsConstants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { delay } from './processes';

const execFileAsync = promisify(execFile);

/** Temporal CLI release the project is tested with (Temporal Server 1.29). */
export const TEMPORAL_CLI_VERSION = '1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export interface ProvisionOptions {
  /** Environment to read TEMPORAL_CLI_PATH, REDIS_SERVER_PATH, PATH, ATELIER_CACHE_DIR from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Progress output (build and download progress can take minutes). @default lines to stderr */
  log?: (line: string) => void;
  /**
   * Whether to install a missing binary (go install / download / apt-get). With false, a missing binary is an
   * error right away.
   * @default true
   */
  install?: boolean;
}

/** Thrown by the resolvers when a binary is missing or broken and cannot be installed; the message says how to fix it. */
export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[provision] ${line}\n`);
};

/** Cache directory for installed tools: ATELIER_CACHE_DIR, else `${XDG_CACHE_HOME:-~/.cache}/atelier`. */
export function atelierCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ATELIER_CACHE_DIR) return path.resolve(env.ATELIER_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.length > 0 ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'atelier');
}

const exeSuffix = process.platform === 'win32' ? '.exe' : '';

/** Where the cached (built or downloaded) Temporal CLI lives. */
export function cachedTemporalCliPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(atelierCacheDir(env), 'bin', `temporal${exeSuffix}`);
}

/**
 * Path of a working Temporal CLI. Order: env TEMPORAL_CLI_PATH (an explicit path that does not work is an error,
 * never silently replaced), `temporal` on PATH, the cache, then install into the cache: `go install` when Go is
 * available, else the official release archive when the internet is reachable. Throws {@link ProvisionError}
 * with install instructions when all of that fails.
 */
export async function resolveTemporalCli(opts: ProvisionOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;

  const explicit = env.TEMPORAL_CLI_PATH;
  if (explicit !== undefined && explicit !== '') {
    const problem = await checkTemporalCli(explicit);
    if (problem) {
      throw new ProvisionError(
        `TEMPORAL_CLI_PATH=${explicit} is not a working Temporal CLI: ${problem}. ` +
          `Point it at a Temporal CLI ${TEMPORAL_CLI_VERSION} binary, or unset it to let Atelier find or install one.`,
      );
    }
    return explicit;
  }

  const onPath = await findOnPath('temporal', env);
  if (onPath) {
    const problem = await checkTemporalCli(onPath);
    if (!problem) return onPath;
    log(`ignoring ${onPath} from PATH: ${problem}`);
  }

  const cached = cachedTemporalCliPath(env);
  if (!(await checkTemporalCli(cached))) return cached;

  if (opts.install === false) throw new ProvisionError(temporalInstallInstructions(cached));

  return withInstallLock(path.join(path.dirname(cached), '.temporal-install.lock'), log, async () => {
    // Another process may have installed it while we waited for the lock.
    if (!(await checkTemporalCli(cached))) return cached;
    const attempts: string[] = [];
    const go = await findOnPath('go', env);
    if (go) {
      try {
        await goInstallTemporalCli(go, cached, env, log);
        const problem = await checkTemporalCli(cached);
        if (!problem) return cached;
        attempts.push(`go install produced a binary that does not run: ${problem}`);
      } catch (err) {
        attempts.push(`go install failed: ${errorMessage(err)}`);
        log(`go install failed: ${errorMessage(err)}`);
      }
    } else {
      attempts.push('Go is not installed');
    }
    try {
      await downloadTemporalCli(cached, log);
      const problem = await checkTemporalCli(cached);
      if (!problem) return cached;
      attempts.push(`the downloaded binary does not run: ${problem}`);
    } catch (err) {
      attempts.push(`download failed: ${errorMessage(err)}`);
    }
    throw new ProvisionError(`${temporalInstallInstructions(cached)}\nTried: ${attempts.join('; ')}.`);
  });
}

function temporalInstallInstructions(cached: string): string {
  const { os: platform, arch } = releasePlatform();
  return [
    `Temporal CLI not found (looked at TEMPORAL_CLI_PATH, \`temporal\` on PATH and ${cached}). Install it with one of:`,
    `  - Go (https://go.dev/dl): CGO_ENABLED=0 GOBIN=${path.dirname(cached)} go install ${TEMPORAL_CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`,
    `  - Download https://github.com/temporalio/cli/releases/download/v${TEMPORAL_CLI_VERSION}/temporal_cli_${TEMPORAL_CLI_VERSION}_${platform}_${arch}.tar.gz`,
    `    and extract \`temporal\` to ${cached}`,
    `  - macOS: brew install temporal`,
    `  - Or set TEMPORAL_CLI_PATH to an existing binary.`,
  ].join('\n');
}

/** Returns why `binary` is not a usable Temporal CLI, or undefined when it is. */
async function checkTemporalCli(binary: string): Promise<string | undefined> {
  const problem = await checkExecutable(binary);
  if (problem) return problem;
  try {
    const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 30_000 });
    if (!/^temporal version/m.test(stdout)) return `\`${binary} --version\` printed ${JSON.stringify(stdout.trim())}`;
    return undefined;
  } catch (err) {
    return `\`${binary} --version\` failed: ${errorMessage(err)}`;
  }
}

async function goInstallTemporalCli(go: string, target: string, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  const binDir = path.dirname(target);
  await fs.mkdir(binDir, { recursive: true });
  log(`building Temporal CLI v${TEMPORAL_CLI_VERSION} with ${go} into ${binDir} (takes several minutes on first run)`);
  const args = [
    'install',
    // Stamp the version so `temporal --version` reports it (a plain `go install` says 0.0.0-DEV).
    `-ldflags=-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`,
    `${TEMPORAL_CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`,
  ];
  await runStreaming(go, args, { ...env, CGO_ENABLED: '0', GOBIN: binDir }, log);
}

function releasePlatform(): { os: string; arch: string } {
  const osName = process.platform === 'win32' ? 'windows' : process.platform;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  return { os: osName, arch };
}

async function downloadTemporalCli(target: string, log: (line: string) => void): Promise<void> {
  const { os: platform, arch } = releasePlatform();
  const archiveExt = platform === 'windows' ? 'zip' : 'tar.gz';
  const urls = [
    `https://github.com/temporalio/cli/releases/download/v${TEMPORAL_CLI_VERSION}/temporal_cli_${TEMPORAL_CLI_VERSION}_${platform}_${arch}.${archiveExt}`,
    `https://temporal.download/cli/archive/v${TEMPORAL_CLI_VERSION}?platform=${platform}&arch=${arch}`,
  ];
  const failures: string[] = [];
  for (const url of urls) {
    let archive: Buffer;
    try {
      log(`downloading ${url}`);
      const res = await fetch(url, { signal: AbortSignal.timeout(300_000), redirect: 'follow' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      archive = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      failures.push(`${url}: ${errorMessage(err)}`);
      continue;
    }
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-temporal-cli-'));
    try {
      const archivePath = path.join(workDir, `temporal.${archiveExt}`);
      await fs.writeFile(archivePath, archive);
      // bsdtar (macOS, Windows 10+) reads zip too; GNU tar reads the Linux/macOS tar.gz.
      await execFileAsync('tar', ['-xf', archivePath, '-C', workDir], { timeout: 120_000 });
      const extracted = path.join(workDir, `temporal${exeSuffix}`);
      await fs.chmod(extracted, 0o755);
      await fs.mkdir(path.dirname(target), { recursive: true });
      // Copy then rename so a concurrent reader never sees a half-written binary.
      const staging = `${target}.${process.pid}.tmp`;
      await fs.copyFile(extracted, staging);
      await fs.chmod(staging, 0o755);
      await fs.rename(staging, target);
      log(`installed Temporal CLI ${TEMPORAL_CLI_VERSION} at ${target}`);
      return;
    } catch (err) {
      failures.push(`${url}: extracting failed: ${errorMessage(err)}`);
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
  }
  throw new Error(failures.join('; '));
}

/**
 * Runs `fn` while holding an exclusive lock file, so concurrent `npm test` / `npm start` runs do not both spend
 * minutes building the same binary. A lock left by a dead process is taken over.
 */
async function withInstallLock<T>(lockPath: string, log: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(path.dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 45 * 60_000;
  let announced = false;
  for (;;) {
    try {
      const handle = await fs.open(lockPath, 'wx');
      await handle.writeFile(JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await readLockHolder(lockPath);
      if (holder === undefined || !isProcessAlive(holder)) {
        await fs.rm(lockPath, { force: true });
        continue;
      }
      if (!announced) {
        log(`waiting for process ${holder}, which is installing the same binary (lock ${lockPath})`);
        announced = true;
      }
      if (Date.now() > deadline) throw new ProvisionError(`Timed out waiting for the install lock ${lockPath} held by process ${holder}`);
      await delay(2_000);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true });
  }
}

async function readLockHolder(lockPath: string): Promise<number | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(lockPath, 'utf8')) as { pid?: unknown };
    return typeof parsed.pid === 'number' ? parsed.pid : undefined;
  } catch {
    // Written but not yet filled by its holder, or garbage: give the holder a moment before calling it stale.
    await delay(500);
    try {
      const parsed = JSON.parse(await fs.readFile(lockPath, 'utf8')) as { pid?: unknown };
      return typeof parsed.pid === 'number' ? parsed.pid : undefined;
    } catch {
      return undefined;
    }
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Path of a working redis-server. Order: env REDIS_SERVER_PATH (a bad explicit path is an error), `redis-server`
 * on PATH, /usr/bin/redis-server, then `apt-get install redis-server` when running as root on a Debian-like
 * system. Throws {@link ProvisionError} with install instructions otherwise.
 */
export async function resolveRedisServer(opts: ProvisionOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;

  const explicit = env.REDIS_SERVER_PATH;
  if (explicit !== undefined && explicit !== '') {
    const problem = await checkRedisServer(explicit);
    if (problem) {
      throw new ProvisionError(
        `REDIS_SERVER_PATH=${explicit} is not a working redis-server: ${problem}. ` +
          'Point it at a redis-server binary (Redis 6.2 or newer), or unset it to let Atelier find or install one.',
      );
    }
    return explicit;
  }

  const candidates = [await findOnPath('redis-server', env), '/usr/bin/redis-server', '/usr/local/bin/redis-server', '/opt/homebrew/bin/redis-server'];
  for (const candidate of candidates) {
    if (candidate && !(await checkRedisServer(candidate))) return candidate;
  }

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const aptGet = await findOnPath('apt-get', env);
  if (opts.install !== false && isRoot && aptGet) {
    log('redis-server not found; installing it with apt-get');
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      await runStreaming(aptGet, ['update'], aptEnv, log);
      await runStreaming(aptGet, ['install', '-y', '--no-install-recommends', 'redis-server'], aptEnv, log);
    } catch (err) {
      throw new ProvisionError(`${redisInstallInstructions()}\napt-get failed: ${errorMessage(err)}`, { cause: err });
    }
    const installed = (await findOnPath('redis-server', env)) ?? '/usr/bin/redis-server';
    const problem = await checkRedisServer(installed);
    if (!problem) return installed;
    throw new ProvisionError(`${redisInstallInstructions()}\napt-get installed redis-server but it does not run: ${problem}`);
  }
  throw new ProvisionError(redisInstallInstructions());
}

function redisInstallInstructions(): string {
  return [
    'redis-server not found (looked at REDIS_SERVER_PATH, PATH and /usr/bin/redis-server). Install Redis 6.2 or newer:',
    '  - Debian/Ubuntu: sudo apt-get install -y redis-server',
    '  - Fedora/RHEL: sudo dnf install -y redis',
    '  - macOS: brew install redis',
    '  - Or set REDIS_SERVER_PATH to an existing redis-server binary, or REDIS_URL to a running Redis.',
  ].join('\n');
}

async function checkRedisServer(binary: string): Promise<string | undefined> {
  const problem = await checkExecutable(binary);
  if (problem) return problem;
  try {
    const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 15_000 });
    if (!/Redis server v=/.test(stdout)) return `\`${binary} --version\` printed ${JSON.stringify(stdout.trim())}`;
    return undefined;
  } catch (err) {
    return `\`${binary} --version\` failed: ${errorMessage(err)}`;
  }
}

async function checkExecutable(binary: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(binary);
    if (!stat.isFile()) return 'not a file';
    await fs.access(binary, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES') return 'not executable';
    return errorMessage(err);
  }
}

/** First executable named `name` on env.PATH, or undefined. */
export async function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((d) => d.length > 0);
  const names = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').map((ext) => name + ext.toLowerCase()) : [name];
  for (const dir of dirs) {
    for (const candidate of names) {
      const full = path.join(dir, candidate);
      if (!(await checkExecutable(full))) return full;
    }
  }
  return undefined;
}

/** Runs a command to completion, passing each output line to `log`; rejects on a non-zero exit. */
function runStreaming(command: string, args: string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split(/\r?\n/)) {
        if (line.trim().length === 0) continue;
        log(line);
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(command)} ${args.join(' ')} exited with ${signal ?? `code ${code}`}:\n${tail.join('\n')}`));
    });
  });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function main(): Promise<void> {
  const temporal = await resolveTemporalCli();
  const redis = await resolveRedisServer();
  process.stdout.write(`TEMPORAL_CLI_PATH=${temporal}\nREDIS_SERVER_PATH=${redis}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof ProvisionError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
