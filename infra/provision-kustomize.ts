// Finds or installs kustomize, which builds infra/k8s's bases and overlays into the manifests kubeconform checks
// (test/infra/k8s-manifests.test.ts): an explicit KUSTOMIZE_PATH, PATH, the per-user cache, then into the cache with
// `go install` or from the project's release archive. A standalone kustomize rather than `kubectl kustomize`, whose
// bundled version follows kubectl's and is often missing on CI runners.
import path from 'node:path';
import { checkToolVersion, goInstallInto, installFromReleaseArchive, releasePlatform } from './go-tool';
import { resolvePinnedBinary } from './provision-binary';
import { atelierCacheDir, exeSuffix, type ProvisionOptions } from './provision-common';

/** kustomize release the manifests are built with. */
export const KUSTOMIZE_VERSION = '5.8.1';
const KUSTOMIZE_PACKAGE = 'sigs.k8s.io/kustomize/kustomize/v5';

/** Where the cached (built or downloaded) kustomize lives. */
export function cachedKustomizePath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(atelierCacheDir(env), 'bin', `kustomize${exeSuffix}`);
}

/**
 * Path of a working kustomize v5. Order: env KUSTOMIZE_PATH (an explicit path that does not work is an error, never
 * silently replaced), `kustomize` on PATH, the cache (when it holds {@link KUSTOMIZE_VERSION}), then install into the
 * cache: `go install` when Go is available, else the release archive. Throws ProvisionError with install
 * instructions when all of that fails.
 */
export async function resolveKustomize(opts: ProvisionOptions = {}): Promise<string> {
  return resolvePinnedBinary(
    {
      label: 'kustomize',
      envVar: 'KUSTOMIZE_PATH',
      command: 'kustomize',
      version: KUSTOMIZE_VERSION,
      cachedPath: cachedKustomizePath,
      // `go install` stamps the module version, which `kustomize version` prints (`v5.8.1`). Any v5 on PATH will do.
      check: (binary, cached) =>
        checkToolVersion(binary, ['version'], /^v?(5\.\d+\.\d+\S*)/m, cached ? KUSTOMIZE_VERSION : undefined),
      goInstall: (go, target, env, log) =>
        goInstallInto(
          go,
          { packageAtVersion: `${KUSTOMIZE_PACKAGE}@v${KUSTOMIZE_VERSION}`, builtName: 'kustomize' },
          target,
          env,
          log,
        ),
      download: (target, log) => installFromReleaseArchive(releaseUrl(), `kustomize${exeSuffix}`, target, log),
      instructions: kustomizeInstallInstructions,
    },
    opts,
  );
}

function releaseUrl(): string {
  const { os, arch } = releasePlatform();
  const tag = `kustomize%2Fv${KUSTOMIZE_VERSION}`;
  return `https://github.com/kubernetes-sigs/kustomize/releases/download/${tag}/kustomize_v${KUSTOMIZE_VERSION}_${os}_${arch}.tar.gz`;
}

function kustomizeInstallInstructions(cached: string): string {
  return [
    `kustomize not found (looked at KUSTOMIZE_PATH, \`kustomize\` on PATH and ${cached}). Install it with one of:`,
    `  - Go (https://go.dev/dl): CGO_ENABLED=0 GOBIN=${path.dirname(cached)} go install ` +
      `${KUSTOMIZE_PACKAGE}@v${KUSTOMIZE_VERSION}`,
    `  - Download ${releaseUrl()} and extract \`kustomize\` to ${cached}`,
    '  - Or set KUSTOMIZE_PATH to an existing kustomize v5 binary.',
  ].join('\n');
}
