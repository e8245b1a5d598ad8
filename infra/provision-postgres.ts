// Finds PostgreSQL's server programs (initdb, postgres, pg_isready, psql) for the private database that the Temporal
// cluster of `npm run stack:cluster` persists to, and on a Debian-like system where we run as root installs
// Debian's `postgresql` package with apt-get. Debian keeps the programs off PATH, in /usr/lib/postgresql/<major>/bin.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  checkExecutable,
  defaultLog,
  errorMessage,
  execFileAsync,
  findOnPath,
  ProvisionError,
  type ProvisionOptions,
} from './provision-common';
import { aptGetInstallFenced } from './provision-apt';

/** Oldest major release Temporal's `postgres12` persistence plugin supports. */
const MIN_MAJOR = 12;
const DEBIAN_ROOT = '/usr/lib/postgresql';
const PROGRAMS = ['initdb', 'postgres', 'pg_isready', 'psql'] as const;

export interface PostgresBinaries {
  /** The folder holding every program below. */
  readonly binDir: string;
  readonly initdb: string;
  readonly postgres: string;
  readonly pgIsReady: string;
  readonly psql: string;
  /** Major release, e.g. 15. */
  readonly major: number;
}

/**
 * PostgreSQL's programs. Order: env POSTGRES_BIN_DIR (a folder without working programs is an error), the newest
 * /usr/lib/postgresql/<major>/bin, the folder of `postgres` on PATH; then `apt-get install postgresql` when
 * running as root on a Debian-like system (the package's own cluster is created but not started). Throws
 * {@link ProvisionError} with install instructions otherwise.
 */
export async function resolvePostgres(opts: ProvisionOptions = {}): Promise<PostgresBinaries> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const explicit = env.POSTGRES_BIN_DIR;
  if (explicit !== undefined && explicit !== '') {
    const found = await checkBinDir(explicit);
    if (typeof found === 'string') {
      throw new ProvisionError(
        `POSTGRES_BIN_DIR=${explicit} is not a PostgreSQL ${MIN_MAJOR}+ bin folder: ${found}. ` +
          'Point it at the folder holding initdb and postgres, or unset it to let Atelier find or install them.',
      );
    }
    return found;
  }
  const found = await findInstalled(env);
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const aptGet = await findOnPath('apt-get', env);
  if (opts.install === false || !isRoot || !aptGet) throw new ProvisionError(installInstructions());
  await aptGetInstallPostgres(aptGet, env, log);
  const installed = await findInstalled(env);
  if (installed) return installed;
  throw new ProvisionError(`${installInstructions()}\napt-get installed postgresql but its programs do not run.`);
}

async function findInstalled(env: NodeJS.ProcessEnv): Promise<PostgresBinaries | undefined> {
  const majors = await fs.readdir(DEBIAN_ROOT).catch(() => [] as string[]);
  const candidates = majors
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a))
    .map((major) => path.join(DEBIAN_ROOT, major, 'bin'));
  const onPath = await findOnPath('postgres', env);
  if (onPath) candidates.push(path.dirname(onPath));
  for (const dir of candidates) {
    const found = await checkBinDir(dir);
    if (typeof found !== 'string') return found;
  }
  return undefined;
}

/** The programs in `dir`, or why they are not usable. */
async function checkBinDir(dir: string): Promise<PostgresBinaries | string> {
  for (const program of PROGRAMS) {
    const problem = await checkExecutable(path.join(dir, program));
    if (problem) return `${program}: ${problem}`;
  }
  const postgres = path.join(dir, 'postgres');
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(postgres, ['--version'], { timeout: 15_000 }));
  } catch (err) {
    return `\`${postgres} --version\` failed: ${errorMessage(err)}`;
  }
  const major = Number(/\(PostgreSQL\) (\d+)/.exec(stdout)?.[1]);
  if (!Number.isInteger(major)) return `\`${postgres} --version\` printed ${JSON.stringify(stdout.trim())}`;
  if (major < MIN_MAJOR) return `it is PostgreSQL ${major}; Temporal needs ${MIN_MAJOR} or newer`;
  const at = (program: string): string => path.join(dir, program);
  return { binDir: dir, initdb: at('initdb'), postgres, pgIsReady: at('pg_isready'), psql: at('psql'), major };
}

/** `apt-get install postgresql`; the package's own cluster is not started (Atelier runs a private one). */
async function aptGetInstallPostgres(
  aptGet: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  log('PostgreSQL not found; installing Debian package postgresql with apt-get (its service is not started)');
  await aptGetInstallFenced(aptGet, 'postgresql', env, log, installInstructions());
}

function installInstructions(): string {
  return [
    `PostgreSQL ${MIN_MAJOR}+ not found (looked at POSTGRES_BIN_DIR, ${DEBIAN_ROOT}/*/bin and PATH). Install it:`,
    '  - Debian/Ubuntu: sudo apt-get install -y --no-install-recommends postgresql ' +
      '&& sudo systemctl disable --now postgresql',
    '  - Fedora/RHEL: sudo dnf install -y postgresql-server',
    '  - macOS: brew install postgresql@16',
    '  - Or set POSTGRES_BIN_DIR to the folder holding initdb, postgres, pg_isready and psql.',
  ].join('\n');
}
