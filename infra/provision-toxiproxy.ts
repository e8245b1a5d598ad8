// Finds or installs toxiproxy-server, the TCP proxy that the network_partition chaos experiment cuts a worker off
// with (infra/toxiproxy.ts drives it): an explicit TOXIPROXY_SERVER_PATH, PATH, the per-user cache, then into the
// cache with `go install` or from the project's release binary. Only the chaos tests and their launcher's own test
// need it, so they resolve it when they start instead of every `npm test` building it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  atelierCacheDir,
  checkExecutable,
  errorMessage,
  execFileAsync,
  exeSuffix,
  runStreaming,
  type ProvisionOptions,
} from './provision-common';
import { resolvePinnedBinary } from './provision-binary';

/** Toxiproxy release the chaos suite is tested with. */
export const TOXIPROXY_VERSION = '2.12.0';
const TOXIPROXY_MODULE = 'github.com/Shopify/toxiproxy/v2';
const RELEASES = 'https://github.com/Shopify/toxiproxy/releases';

/** Where the cached (built or downloaded) toxiproxy-server lives. */
export function cachedToxiproxyServerPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(atelierCacheDir(env), 'bin', `toxiproxy-server${exeSuffix}`);
}

/**
 * Path of a working toxiproxy-server. Order: env TOXIPROXY_SERVER_PATH (an explicit path that does not work is an
 * error, never silently replaced), `toxiproxy-server` on PATH, the cache (when it holds {@link TOXIPROXY_VERSION}),
 * then install into the cache: `go install` when Go is available, else the release binary. Throws
 * {@link ProvisionError} with install instructions when all of that fails.
 */
export async function resolveToxiproxyServer(opts: ProvisionOptions = {}): Promise<string> {
  return resolvePinnedBinary(
    {
      label: 'toxiproxy-server',
      envVar: 'TOXIPROXY_SERVER_PATH',
      command: 'toxiproxy-server',
      version: TOXIPROXY_VERSION,
      cachedPath: cachedToxiproxyServerPath,
      // The cache must hold the pinned release: one filled for an older pin is rebuilt rather than kept.
      check: (binary, cached) => checkToxiproxyServer(binary, cached ? TOXIPROXY_VERSION : undefined),
      goInstall: goInstallToxiproxyServer,
      download: downloadToxiproxyServer,
      instructions: toxiproxyInstallInstructions,
    },
    opts,
  );
}

function toxiproxyInstallInstructions(cached: string): string {
  return [
    `toxiproxy-server not found (looked at TOXIPROXY_SERVER_PATH, \`toxiproxy-server\` on PATH and ${cached}). ` +
      'Install it with one of:',
    `  - Go (https://go.dev/dl): CGO_ENABLED=0 GOBIN=/tmp/toxiproxy go install ` +
      `${TOXIPROXY_MODULE}/cmd/server@v${TOXIPROXY_VERSION}, then move /tmp/toxiproxy/server to ${cached}`,
    `  - Download ${releaseBinaryUrl()} to ${cached} and make it executable`,
    '  - macOS: brew install toxiproxy',
    '  - Or set TOXIPROXY_SERVER_PATH to an existing toxiproxy-server binary.',
  ].join('\n');
}

/**
 * Returns why `binary` is not a usable toxiproxy-server, or undefined when it is. With `version`, it must report
 * that release: a cache filled for an older pin is rebuilt rather than kept.
 */
async function checkToxiproxyServer(binary: string, version?: string): Promise<string | undefined> {
  const problem = await checkExecutable(binary);
  if (problem) return problem;
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(binary, ['-version'], { timeout: 30_000 }));
  } catch (err) {
    return `\`${binary} -version\` failed: ${errorMessage(err)}`;
  }
  const reported = /^toxiproxy-server version (\S+)/m.exec(stdout)?.[1];
  if (reported === undefined) return `\`${binary} -version\` printed ${JSON.stringify(stdout.trim())}`;
  if (version !== undefined && reported.replace(/^v/, '') !== version) return `it is ${reported}, not ${version}`;
  return undefined;
}

/**
 * `go install` names the binary after its package folder (`server`), so it is built into a private folder and
 * renamed into place: a concurrent reader never sees a half-written binary, and nothing else called `server` in the
 * cache is overwritten.
 */
async function goInstallToxiproxyServer(
  go: string,
  target: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  const binDir = path.dirname(target);
  const buildDir = path.join(binDir, `.toxiproxy-build-${process.pid}`);
  await fs.mkdir(buildDir, { recursive: true });
  log(`building toxiproxy-server v${TOXIPROXY_VERSION} with ${go} into ${binDir}`);
  try {
    const args = [
      'install',
      // Stamp the version, as the project's releases do, so `-version` reports it (a plain build says "git").
      `-ldflags=-X ${TOXIPROXY_MODULE}.Version=${TOXIPROXY_VERSION}`,
      `${TOXIPROXY_MODULE}/cmd/server@v${TOXIPROXY_VERSION}`,
    ];
    await runStreaming(go, args, { ...env, CGO_ENABLED: '0', GOBIN: buildDir }, log);
    await fs.rename(path.join(buildDir, `server${exeSuffix}`), target);
    log(`installed toxiproxy-server ${TOXIPROXY_VERSION} at ${target}`);
  } finally {
    await fs.rm(buildDir, { recursive: true, force: true });
  }
}

/** The release's plain binary for this platform (the project publishes one per OS and architecture). */
function releaseBinaryUrl(): string {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  return `${RELEASES}/download/v${TOXIPROXY_VERSION}/toxiproxy-server-${platform}-${arch}${exeSuffix}`;
}

async function downloadToxiproxyServer(target: string, log: (line: string) => void): Promise<void> {
  const url = releaseBinaryUrl();
  log(`downloading ${url}`);
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000), redirect: 'follow' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const binary = Buffer.from(await res.arrayBuffer());
  await fs.mkdir(path.dirname(target), { recursive: true });
  // Write then rename so a concurrent reader never sees a half-written binary.
  const staging = `${target}.${process.pid}.tmp`;
  try {
    await fs.writeFile(staging, binary, { mode: 0o755 });
    await fs.rename(staging, target);
  } finally {
    await fs.rm(staging, { force: true });
  }
  log(`installed toxiproxy-server ${TOXIPROXY_VERSION} at ${target}`);
}
