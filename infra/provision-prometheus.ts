// Finds prometheus and promtool (explicit PROMETHEUS_PATH / PROMTOOL_PATH, PATH, the usual install locations), and
// on a Debian-like system where we run as root installs Debian's `prometheus` package, which ships both. The
// package would start (and enable at boot) a system Prometheus on port 9090, the port the local stack's own
// Prometheus takes, so the install is fenced: see aptGetInstallPrometheus.
import { promises as fs } from 'node:fs';
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

export interface PrometheusBinaries {
  /** The server. */
  readonly prometheus: string;
  /** Its companion tool: `check config`, `check rules`, `test rules`. */
  readonly promtool: string;
}

type Tool = 'prometheus' | 'promtool';

const ENV_VAR: Readonly<Record<Tool, string>> = { prometheus: 'PROMETHEUS_PATH', promtool: 'PROMTOOL_PATH' };
const INSTALL_DIRS = ['/usr/bin', '/usr/local/bin', '/opt/homebrew/bin'];

/**
 * Paths of a working prometheus and promtool. Order for each: env PROMETHEUS_PATH / PROMTOOL_PATH (a bad explicit
 * path is an error), PATH, /usr/bin, /usr/local/bin, /opt/homebrew/bin; then, when either is still missing,
 * `apt-get install prometheus` when running as root on a Debian-like system. Throws {@link ProvisionError} with
 * install instructions otherwise.
 */
export async function resolvePrometheus(opts: ProvisionOptions = {}): Promise<PrometheusBinaries> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const found = { prometheus: await findTool('prometheus', env), promtool: await findTool('promtool', env) };
  if (found.prometheus && found.promtool) return { prometheus: found.prometheus, promtool: found.promtool };

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const aptGet = await findOnPath('apt-get', env);
  if (opts.install !== false && isRoot && aptGet) {
    await aptGetInstallPrometheus(aptGet, env, log);
    const prometheus = found.prometheus ?? (await findTool('prometheus', env));
    const promtool = found.promtool ?? (await findTool('promtool', env));
    if (prometheus && promtool) return { prometheus, promtool };
    throw new ProvisionError(`${installInstructions()}\napt-get installed prometheus but a binary does not run.`);
  }
  throw new ProvisionError(installInstructions());
}

/** The explicit path for `tool` (checked), else the first working candidate, else undefined. */
async function findTool(tool: Tool, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const explicit = env[ENV_VAR[tool]];
  if (explicit !== undefined && explicit !== '') {
    const problem = await checkTool(tool, explicit);
    if (problem) {
      throw new ProvisionError(
        `${ENV_VAR[tool]}=${explicit} is not a working ${tool}: ${problem}. ` +
          `Point it at a ${tool} binary (Prometheus 2.x or newer), or unset it to let Atelier find or install one.`,
      );
    }
    return explicit;
  }
  const candidates = [await findOnPath(tool, env), ...INSTALL_DIRS.map((dir) => `${dir}/${tool}`)];
  for (const candidate of candidates) {
    if (candidate && !(await checkTool(tool, candidate))) return candidate;
  }
  return undefined;
}

/**
 * `apt-get install prometheus`, without leaving a system Prometheus behind: while apt runs, a policy-rc.d that
 * answers 101 keeps the package's postinst from starting the service (only when the machine has none: an existing
 * policy is the administrator's and stays as it is); where systemd runs, the unit the package enables for boot is
 * disabled and stopped afterwards, since it would take port 9090 at the next boot.
 */
async function aptGetInstallPrometheus(
  aptGet: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  log('prometheus/promtool not found; installing Debian package prometheus with apt-get (its service is not started)');
  await aptGetInstallFenced(aptGet, 'prometheus', env, log, installInstructions());
  await disableSystemService(env, log);
}

/** Where systemd is the init system, `systemctl disable --now prometheus.service`; a no-op elsewhere. */
async function disableSystemService(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  const systemctl = await findOnPath('systemctl', env);
  const systemdRuns = await fs.stat('/run/systemd/system').then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!systemctl || !systemdRuns) return;
  try {
    await execFileAsync(systemctl, ['disable', '--now', 'prometheus.service'], { timeout: 60_000 });
    log('disabled and stopped the system prometheus.service: the local stack runs its own Prometheus');
  } catch (err) {
    log(`could not disable prometheus.service (${errorMessage(err)}); stop it if it holds port 9090`);
  }
}

function installInstructions(): string {
  return [
    'prometheus and promtool not found (looked at PROMETHEUS_PATH, PROMTOOL_PATH, PATH and /usr/bin). ' +
      'Install Prometheus 2.x or newer (the package ships both binaries):',
    '  - Debian/Ubuntu: sudo apt-get install -y --no-install-recommends prometheus ' +
      '&& sudo systemctl disable --now prometheus',
    '  - Fedora/RHEL: sudo dnf install -y golang-github-prometheus',
    '  - macOS: brew install prometheus',
    '  - Or set PROMETHEUS_PATH and PROMTOOL_PATH to existing binaries (e.g. from a release tarball).',
  ].join('\n');
}

/** Why `binary` is not a working `tool`, or undefined when `binary --version` names it. */
async function checkTool(tool: Tool, binary: string): Promise<string | undefined> {
  const problem = await checkExecutable(binary);
  if (problem) return problem;
  try {
    // Older releases print the version to stderr, newer ones to stdout.
    const { stdout, stderr } = await execFileAsync(binary, ['--version'], { timeout: 15_000 });
    const printed = `${stdout}${stderr}`;
    if (!new RegExp(`^${tool}, version \\d+\\.`, 'm').test(printed)) {
      return `\`${binary} --version\` printed ${JSON.stringify(printed.trim().split('\n')[0] ?? '')}`;
    }
    return undefined;
  } catch (err) {
    return `\`${binary} --version\` failed: ${errorMessage(err)}`;
  }
}
