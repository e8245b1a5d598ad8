// The schemas kubeconform validates infra/k8s against, built here instead of downloaded: kubeconform's default
// schema location is GitHub, which CI and air-gapped machines cannot reach. They come from pinned Go modules on the
// module proxy (the Kubernetes OpenAPI spec in k8s.io/kubernetes, KEDA's ScaledObject CRD in its module), are
// converted by k8s-json-schema.ts, and are kept in the per-user cache, never in the repository. The same pins give
// the same files on every machine.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { readGoModuleFile, type GoModuleFile } from './go-module-file';
import { schemasFromCrd, schemasFromSwagger, type JsonObject } from './k8s-json-schema';
import { atelierCacheDir, defaultLog, type ProvisionOptions } from './provision-common';

/** The Kubernetes release whose API the manifests are validated against. */
export const KUBERNETES_SCHEMA_VERSION = '1.34.4';
/** The KEDA release whose ScaledObject the keda component is validated against (its Temporal scaler). */
export const KEDA_SCHEMA_VERSION = '2.21.0';
/** Bumped when k8s-json-schema.ts changes what it writes, so caches filled by an older converter are rebuilt. */
const CONVERTER_REVISION = 1;

const KUBERNETES_OPENAPI: GoModuleFile = {
  module: 'k8s.io/kubernetes',
  version: `v${KUBERNETES_SCHEMA_VERSION}`,
  file: 'api/openapi-spec/swagger.json',
  zipSha256: '6641440638f79b2115813c8f2ba26d35b2ab7fb4d8a5111fbee279d93abf1fcb',
};

const KEDA_SCALED_OBJECT_CRD: GoModuleFile = {
  module: 'github.com/kedacore/keda/v2',
  version: `v${KEDA_SCHEMA_VERSION}`,
  file: 'config/crd/bases/keda.sh_scaledobjects.yaml',
  zipSha256: '74b59fe16144250748b716d6dc8789dee52d26164daab732145bed60456013a4',
};

export interface K8sSchemas {
  /** For kubeconform's `-kubernetes-version`. */
  readonly kubernetesVersion: string;
  /** For kubeconform's `-schema-location`, in order: the Kubernetes kinds, then the CRDs. */
  readonly schemaLocations: readonly string[];
}

/** Folder of the generated schemas in the cache. */
export function k8sSchemaCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(atelierCacheDir(env), 'k8s-schemas', `r${CONVERTER_REVISION}`);
}

/**
 * The schema locations, generated into the cache on first use (two module downloads, about 20 MB, and a few
 * seconds of conversion); later calls only look at the cache.
 */
export async function resolveK8sSchemas(opts: ProvisionOptions = {}): Promise<K8sSchemas> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const root = k8sSchemaCacheDir(env);
  // kubeconform appends `/v<version>-standalone-strict/<kind>.json` to a location that does not end in `.json`.
  const kubernetes = path.join(root, 'kubernetes');
  await ensureSchemaDir(path.join(kubernetes, `v${KUBERNETES_SCHEMA_VERSION}-standalone-strict`), log, async () => {
    const swagger = JSON.parse((await readGoModuleFile(KUBERNETES_OPENAPI, env)).toString('utf8')) as JsonObject;
    return schemasFromSwagger(swagger);
  });
  const keda = path.join(root, `keda-v${KEDA_SCHEMA_VERSION}`);
  await ensureSchemaDir(keda, log, async () => {
    const crd = load((await readGoModuleFile(KEDA_SCALED_OBJECT_CRD, env)).toString('utf8')) as JsonObject;
    return schemasFromCrd(crd);
  });
  return {
    kubernetesVersion: KUBERNETES_SCHEMA_VERSION,
    schemaLocations: [kubernetes, path.join(keda, '{{ .ResourceKind }}{{ .KindSuffix }}.json')],
  };
}

/**
 * Fills `dir` with the schemas `generate` returns unless it exists. The files are written to a private folder that
 * is renamed into place, so a folder that exists is complete, and two processes filling it at once both succeed.
 */
async function ensureSchemaDir(
  dir: string,
  log: (line: string) => void,
  generate: () => Promise<Map<string, JsonObject>>,
): Promise<void> {
  if (await isDirectory(dir)) return;
  log(`generating Kubernetes JSON schemas into ${dir}`);
  const files = await generate();
  const staging = `${dir}.${process.pid}.tmp`;
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { recursive: true });
  try {
    for (const [name, schema] of files) await fs.writeFile(path.join(staging, name), JSON.stringify(schema));
    await fs.rename(staging, dir);
    log(`wrote ${files.size} schemas to ${dir}`);
  } catch (err) {
    // Another process renamed its complete copy into place first: use that one.
    if (!(await isDirectory(dir))) throw err;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await fs.stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
