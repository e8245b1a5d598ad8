// Finds redis-server (an explicit REDIS_SERVER_PATH, PATH, the usual install locations), and on a Debian-like
// system where we run as root installs it with apt-get.
import {
  checkExecutable,
  defaultLog,
  errorMessage,
  execFileAsync,
  findOnPath,
  ProvisionError,
  runStreaming,
  type ProvisionOptions,
} from './provision-common';

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

  const candidates = [
    await findOnPath('redis-server', env),
    '/usr/bin/redis-server',
    '/usr/local/bin/redis-server',
    '/opt/homebrew/bin/redis-server',
  ];
  for (const candidate of candidates) {
    if (candidate && !(await checkRedisServer(candidate))) return candidate;
  }

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const aptGet = await findOnPath('apt-get', env);
  if (opts.install !== false && isRoot && aptGet) return aptGetInstallRedis(aptGet, env, log);
  throw new ProvisionError(redisInstallInstructions());
}

async function aptGetInstallRedis(
  aptGet: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<string> {
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
  throw new ProvisionError(
    `${redisInstallInstructions()}\napt-get installed redis-server but it does not run: ${problem}`,
  );
}

function redisInstallInstructions(): string {
  return [
    'redis-server not found (looked at REDIS_SERVER_PATH, PATH and /usr/bin/redis-server). ' +
      'Install Redis 6.2 or newer:',
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
