// What the Kubernetes tooling (kubeconform, kustomize) shares on top of provision-binary.ts: checking that a binary
// reports the pinned version, building it with `go install` into a private folder that is renamed into the cache,
// and unpacking a release archive the same way where GitHub is reachable.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkExecutable, errorMessage, execFileAsync, exeSuffix, runStreaming } from './provision-common';

/**
 * Why `binary` is not a usable tool, or undefined: it must run `args` and print something `versionPattern`
 * captures; with `version`, that must be the pin (a cache filled for an older pin is rebuilt rather than kept).
 */
export async function checkToolVersion(
  binary: string,
  args: readonly string[],
  versionPattern: RegExp,
  version?: string,
): Promise<string | undefined> {
  const problem = await checkExecutable(binary);
  if (problem) return problem;
  const command = `\`${binary} ${args.join(' ')}\``;
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(binary, [...args], { timeout: 30_000 }));
  } catch (err) {
    return `${command} failed: ${errorMessage(err)}`;
  }
  const reported = versionPattern.exec(stdout)?.[1];
  if (reported === undefined) return `${command} printed ${JSON.stringify(stdout.trim())}`;
  if (version !== undefined && reported.replace(/^v/, '') !== version) return `it is ${reported}, not ${version}`;
  return undefined;
}

export interface GoToolBuild {
  /** `module/cmd/path@vX.Y.Z`. */
  readonly packageAtVersion: string;
  /** Name `go install` gives the binary (its package folder's). */
  readonly builtName: string;
  /** Extra `go install` flags, e.g. `-ldflags=...` to stamp the version. */
  readonly flags?: readonly string[];
}

/** Builds with `go install` into a private folder, then renames into `target`: no reader sees half a binary. */
export async function goInstallInto(
  go: string,
  build: GoToolBuild,
  target: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  const buildDir = path.join(path.dirname(target), `.${build.builtName}-build-${process.pid}`);
  await fs.mkdir(buildDir, { recursive: true });
  log(`building ${build.packageAtVersion} with ${go} into ${path.dirname(target)}`);
  try {
    const args = ['install', ...(build.flags ?? []), build.packageAtVersion];
    await runStreaming(go, args, { ...env, CGO_ENABLED: '0', GOBIN: buildDir }, log);
    await fs.rename(path.join(buildDir, `${build.builtName}${exeSuffix}`), target);
    log(`installed ${target}`);
  } finally {
    await fs.rm(buildDir, { recursive: true, force: true });
  }
}

/** The platform as release archives name it: `linux`/`darwin`/`windows`, `amd64`/`arm64`. */
export function releasePlatform(): { os: string; arch: string } {
  return {
    os: process.platform === 'win32' ? 'windows' : process.platform,
    arch: process.arch === 'x64' ? 'amd64' : process.arch,
  };
}

/** Downloads a `.tar.gz` release archive and moves its `member` binary to `target`. */
export async function installFromReleaseArchive(
  url: string,
  member: string,
  target: string,
  log: (line: string) => void,
): Promise<void> {
  log(`downloading ${url}`);
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000), redirect: 'follow' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-release-'));
  try {
    const archive = path.join(workDir, 'release.tar.gz');
    await fs.writeFile(archive, Buffer.from(await res.arrayBuffer()));
    await execFileAsync('tar', ['-xzf', archive, '-C', workDir, member], { timeout: 120_000 });
    await fs.mkdir(path.dirname(target), { recursive: true });
    const staging = `${target}.${process.pid}.tmp`;
    await fs.copyFile(path.join(workDir, member), staging);
    await fs.chmod(staging, 0o755);
    await fs.rename(staging, target);
    log(`installed ${target}`);
  } finally {
    await fs.rm(workDir, { recursive: true, force: true });
  }
}
