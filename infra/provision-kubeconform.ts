// Finds or installs kubeconform, the validator that checks infra/k8s against the Kubernetes API schemas
// (test/infra/k8s-manifests.test.ts; the schemas themselves come from k8s-schemas.ts): an explicit KUBECONFORM_PATH,
// PATH, the per-user cache, then into the cache with `go install` or from the project's release archive. Only the
// manifest test needs it, so it is resolved there rather than by every `npm start`.
import path from 'node:path';
import { checkToolVersion, goInstallInto, installFromReleaseArchive, releasePlatform } from './go-tool';
import { resolvePinnedBinary } from './provision-binary';
import { atelierCacheDir, exeSuffix, type ProvisionOptions } from './provision-common';

/** kubeconform release the manifests are validated with. */
export const KUBECONFORM_VERSION = '0.7.0';
const KUBECONFORM_MODULE = 'github.com/yannh/kubeconform';

/** Where the cached (built or downloaded) kubeconform lives. */
export function cachedKubeconformPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(atelierCacheDir(env), 'bin', `kubeconform${exeSuffix}`);
}

/**
 * Path of a working kubeconform. Order: env KUBECONFORM_PATH (an explicit path that does not work is an error,
 * never silently replaced), `kubeconform` on PATH, the cache (when it holds {@link KUBECONFORM_VERSION}), then
 * install into the cache: `go install` when Go is available, else the release archive. Throws ProvisionError with
 * install instructions when all of that fails.
 */
export async function resolveKubeconform(opts: ProvisionOptions = {}): Promise<string> {
  return resolvePinnedBinary(
    {
      label: 'kubeconform',
      envVar: 'KUBECONFORM_PATH',
      command: 'kubeconform',
      version: KUBECONFORM_VERSION,
      cachedPath: cachedKubeconformPath,
      // `-v` prints the version a release (or our build) was stamped with; a plain `go install` says "development".
      check: (binary, cached) =>
        checkToolVersion(binary, ['-v'], /^v?(\d+\.\d+\.\d+\S*)/m, cached ? KUBECONFORM_VERSION : undefined),
      goInstall: (go, target, env, log) =>
        goInstallInto(
          go,
          {
            packageAtVersion: `${KUBECONFORM_MODULE}/cmd/kubeconform@v${KUBECONFORM_VERSION}`,
            builtName: 'kubeconform',
            flags: [`-ldflags=-X main.version=v${KUBECONFORM_VERSION}`],
          },
          target,
          env,
          log,
        ),
      download: (target, log) => installFromReleaseArchive(releaseUrl(), `kubeconform${exeSuffix}`, target, log),
      instructions: kubeconformInstallInstructions,
    },
    opts,
  );
}

function releaseUrl(): string {
  const { os, arch } = releasePlatform();
  return `https://${KUBECONFORM_MODULE}/releases/download/v${KUBECONFORM_VERSION}/kubeconform-${os}-${arch}.tar.gz`;
}

function kubeconformInstallInstructions(cached: string): string {
  return [
    `kubeconform not found (looked at KUBECONFORM_PATH, \`kubeconform\` on PATH and ${cached}). Install it with one of:`,
    `  - Go (https://go.dev/dl): CGO_ENABLED=0 GOBIN=${path.dirname(cached)} go install ` +
      `-ldflags=-X=main.version=v${KUBECONFORM_VERSION} ${KUBECONFORM_MODULE}/cmd/kubeconform@v${KUBECONFORM_VERSION}`,
    `  - Download ${releaseUrl()} and extract \`kubeconform\` to ${cached}`,
    '  - Or set KUBECONFORM_PATH to an existing kubeconform binary.',
  ].join('\n');
}
