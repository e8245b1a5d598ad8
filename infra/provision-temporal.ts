// Finds or installs the Temporal CLI (its `server start-dev` is our Temporal): an explicit TEMPORAL_CLI_PATH, PATH,
// the per-user cache, then into the cache with `go install` or from the official release archive.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  atelierCacheDir,
  errorMessage,
  execFileAsync,
  exeSuffix,
  checkExecutable,
  runStreaming,
  type ProvisionOptions,
} from './provision-common';
import { resolvePinnedBinary } from './provision-binary';

/** Temporal CLI release the project is tested with (Temporal Server 1.29). */
export const TEMPORAL_CLI_VERSION = '1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

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
  return resolvePinnedBinary(
    {
      label: 'Temporal CLI',
      envVar: 'TEMPORAL_CLI_PATH',
      command: 'temporal',
      version: TEMPORAL_CLI_VERSION,
      cachedPath: cachedTemporalCliPath,
      check: (binary) => checkTemporalCli(binary),
      goInstall: goInstallTemporalCli,
      download: downloadTemporalCli,
      instructions: temporalInstallInstructions,
    },
    opts,
  );
}

function temporalInstallInstructions(cached: string): string {
  const { os: platform, arch } = releasePlatform();
  const goBin = path.dirname(cached);
  return [
    `Temporal CLI not found (looked at TEMPORAL_CLI_PATH, \`temporal\` on PATH and ${cached}). Install it with one of:`,
    `  - Go (https://go.dev/dl): CGO_ENABLED=0 GOBIN=${goBin} go install ` +
      `${TEMPORAL_CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`,
    `  - Download ${githubReleaseUrl(platform, arch, 'tar.gz')}`,
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

async function goInstallTemporalCli(
  go: string,
  target: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
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

function githubReleaseUrl(platform: string, arch: string, archiveExt: string): string {
  const release = `https://github.com/temporalio/cli/releases/download/v${TEMPORAL_CLI_VERSION}`;
  return `${release}/temporal_cli_${TEMPORAL_CLI_VERSION}_${platform}_${arch}.${archiveExt}`;
}

async function downloadTemporalCli(target: string, log: (line: string) => void): Promise<void> {
  const { os: platform, arch } = releasePlatform();
  const archiveExt = platform === 'windows' ? 'zip' : 'tar.gz';
  const urls = [
    githubReleaseUrl(platform, arch, archiveExt),
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
