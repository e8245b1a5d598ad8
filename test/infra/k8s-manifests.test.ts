// The Kubernetes deployment material (infra/k8s, docs/kubernetes.md): every kustomization builds with kustomize and
// every resource it produces passes kubeconform, strictly, against the Kubernetes 1.34 API and KEDA's ScaledObject
// (schemas generated from the Go module proxy into the cache, infra/k8s-schemas.ts); a manifest with a misspelt
// field fails. Beyond the schemas, the manifests agree with the code they deploy: task queue names, the GPU
// workers' drain time against the longest request each fleet runs, the autoscaler's RBAC and Deployment names,
// Temporal's search attributes, and the alert rules Prometheus loads.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { dump, load, loadAll } from 'js-yaml';
import { gpuTaskQueue, relaxTaskQueue, type GpuType } from '../../core/gpu';
import { serviceMs } from '../../core/estimate';
import { MODELS, type ModelName } from '../../core/models';
import { MAX_IMAGES_PER_REQUEST } from '../../core/request';
import { routeToGpu } from '../../core/routing';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { TIERS } from '../../core/tiers';
import { resolveK8sSchemas, type K8sSchemas } from '../../infra/k8s-schemas';
import { describeProblems, kubeconformValidate, kustomizeBuild } from '../../infra/k8s-validate';
import { resolveKubeconform } from '../../infra/provision-kubeconform';
import { resolveKustomize } from '../../infra/provision-kustomize';
import { repoRoot } from '../../infra/repo-root';

const K8S = path.join(repoRoot(), 'infra', 'k8s');
const FLEETS = ['a10g', 'a100', 'a100-80gb', 'h100'] as const satisfies readonly GpuType[];
const REGION = 'us-west';

/** A manifest as plain data: tests read it by path. */
type Manifest = { kind: string; metadata: { name: string }; [key: string]: unknown };
type Container = { name: string; env?: { name: string; value?: string }[]; [key: string]: unknown };

let kustomize: string;
let kubeconform: string;
let schemas: K8sSchemas;
const built = new Map<string, Manifest[]>();

before(async () => {
  [kustomize, kubeconform, schemas] = await Promise.all([
    resolveKustomize(),
    resolveKubeconform(),
    resolveK8sSchemas(),
  ]);
});

async function build(overlay: string): Promise<{ yaml: string; manifests: Manifest[] }> {
  const yaml = await kustomizeBuild(kustomize, path.join(K8S, overlay));
  const manifests = loadAll(yaml) as Manifest[];
  built.set(overlay, manifests);
  return { yaml, manifests };
}

function find(manifests: readonly Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  assert.ok(found, `${kind}/${name} is missing`);
  return found;
}

/** The pod spec and first container of a Deployment. */
function podOf(deployment: Manifest): { spec: Record<string, unknown>; container: Container } {
  const spec = (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;
  const container = (spec.containers as Container[])[0];
  assert.ok(container, `${deployment.metadata.name} has no container`);
  return { spec, container };
}

function envOf(container: Container, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}

const EXPECTED: Record<string, readonly string[]> = {
  'overlays/production': [
    'Deployment/atelier-gateway',
    'Service/atelier-gateway',
    'HorizontalPodAutoscaler/atelier-gateway',
    'PodDisruptionBudget/atelier-gateway',
    'Deployment/atelier-control-worker',
    ...FLEETS.map((t) => `Deployment/atelier-gpu-${t}`),
    'ServiceAccount/atelier-autoscaler',
    'Role/atelier-autoscaler',
    'RoleBinding/atelier-autoscaler',
    'StatefulSet/atelier-redis',
    'Service/atelier-redis',
    'PersistentVolumeClaim/atelier-objects',
    'Namespace/atelier',
  ],
  'overlays/production-keda': FLEETS.map((t) => `ScaledObject/atelier-gpu-${t}`),
  base: ['Deployment/atelier-gateway', ...FLEETS.map((t) => `Deployment/atelier-gpu-${t}`)],
};

describe('kustomize build | kubeconform', () => {
  for (const [overlay, expected] of Object.entries(EXPECTED)) {
    test(`${overlay}: every resource is valid, and the expected ones are there`, async () => {
      const { yaml } = await build(overlay);
      const report = await kubeconformValidate(kubeconform, schemas, yaml);
      assert.deepEqual(
        { invalid: report.summary.invalid, errors: report.summary.errors, skipped: report.summary.skipped },
        { invalid: 0, errors: 0, skipped: 0 },
        describeProblems(report),
      );
      const present = new Set(report.resources.map((r) => `${r.kind}/${r.name}`));
      for (const resource of expected) assert.ok(present.has(resource), `${overlay} lacks ${resource}`);
    });
  }

  test('a misspelt field, a wrong type and a KEDA field of the wrong kind each fail validation', async () => {
    const { yaml } = await build('overlays/production-keda');
    const broken = yaml
      .replace('terminationGracePeriodSeconds: 4620', 'terminationGracePeriodSecond: 4620')
      .replace('averageUtilization: 70', 'averageUtilization: "70"')
      .replace('minReplicaCount: 1', 'minReplicaCount: one');
    assert.notEqual(broken, yaml);
    const report = await kubeconformValidate(kubeconform, schemas, broken);
    const invalid = report.resources.filter((r) => r.status === 'statusInvalid').map((r) => `${r.kind}/${r.name}`);
    assert.deepEqual(invalid.sort(), [
      'Deployment/atelier-gpu-a100',
      'HorizontalPodAutoscaler/atelier-gateway',
      'ScaledObject/atelier-gpu-a100',
    ]);
  });
});

/** The longest request each fleet may run, ms: every model, tier, square size and batch, at its most steps. */
function longestRequestMs(): Map<GpuType, number> {
  const longest = new Map<GpuType, number>();
  for (const model of Object.keys(MODELS) as ModelName[]) {
    const { maxSize, maxSteps } = MODELS[model];
    for (let size = 64; size <= maxSize; size += 8) {
      for (let numImages = 1; numImages <= MAX_IMAGES_PER_REQUEST; numImages++) {
        for (const tier of TIERS) {
          const route = routeToGpu({ model, tier, width: size, height: size, numImages, loras: [], controlnets: [] });
          const job = { model, width: size, height: size, numImages, steps: maxSteps };
          for (const gpu of [route.gpuType, ...route.alternatives]) {
            longest.set(gpu, Math.max(longest.get(gpu) ?? 0, serviceMs(job, gpu)));
          }
        }
      }
    }
  }
  return longest;
}

describe('GPU fleets', () => {
  test('one Deployment per fleet, on its nodes, with a GPU, health probes and its own type', async () => {
    const { manifests } = await build('overlays/production');
    for (const gpuType of FLEETS) {
      const deployment = find(manifests, 'Deployment', `atelier-gpu-${gpuType}`);
      const { spec, container } = podOf(deployment);
      const template = (deployment.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
      assert.equal(template.metadata.labels['atelier.dev/gpu-type'], gpuType);
      assert.deepEqual(spec.nodeSelector, { 'atelier.dev/gpu-type': gpuType });
      assert.deepEqual(spec.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
      assert.equal((container.resources as { limits: Record<string, unknown> }).limits['nvidia.com/gpu'], 1);
      const port = Number(envOf(container, 'ATELIER_WORKER_HEALTH_PORT'));
      assert.equal(envOf(container, 'ATELIER_WORKER_HEALTH_HOST'), '0.0.0.0');
      const ports = container.ports as { name: string; containerPort: number }[];
      assert.deepEqual(ports, [{ name: 'health', containerPort: port }]);
      const probe = (p: string): unknown => (container[p] as { httpGet: unknown }).httpGet;
      assert.deepEqual(probe('readinessProbe'), { path: '/readyz', port: 'health' });
      assert.deepEqual(probe('livenessProbe'), { path: '/healthz', port: 'health' });
      // The worker's ATELIER_GPU_TYPE is the pod's label, which the fleet's folder sets.
      const gpuEnv = container.env?.find((e) => e.name === 'ATELIER_GPU_TYPE') as unknown;
      assert.deepEqual(gpuEnv, {
        name: 'ATELIER_GPU_TYPE',
        valueFrom: { fieldRef: { fieldPath: "metadata.labels['atelier.dev/gpu-type']" } },
      });
    }
  });

  test('terminationGracePeriodSeconds covers the drain of the longest request each fleet runs', async () => {
    const manifests = built.get('overlays/production') ?? (await build('overlays/production')).manifests;
    const longest = longestRequestMs();
    for (const gpuType of FLEETS) {
      const { spec, container } = podOf(find(manifests, 'Deployment', `atelier-gpu-${gpuType}`));
      const graceMs = Number(envOf(container, 'ATELIER_WORKER_SHUTDOWN_GRACE_MS'));
      const longestMs = longest.get(gpuType) ?? 0;
      assert.ok(longestMs > 0, `no request routes to ${gpuType}`);
      assert.ok(graceMs >= longestMs, `${gpuType}: shutdown grace ${graceMs} ms < longest request ${longestMs} ms`);
      // The rest of the shutdown (backends, Redis, Temporal) needs time after the grace, before SIGKILL.
      const terminationS = spec.terminationGracePeriodSeconds as number;
      assert.ok(terminationS >= graceMs / 1000 + 30, `${gpuType}: ${terminationS} s leaves no time after the grace`);
    }
  });

  test("the autoscaler's service account, on the control worker, may scale exactly these Deployments", async () => {
    const manifests = built.get('overlays/production') ?? (await build('overlays/production')).manifests;
    const { spec, container } = podOf(find(manifests, 'Deployment', 'atelier-control-worker'));
    assert.equal(spec.serviceAccountName, 'atelier-autoscaler');
    assert.equal(envOf(container, 'ATELIER_AUTOSCALER'), 'true');
    assert.equal(envOf(container, 'ATELIER_SCALE_DRIVER'), 'kubernetes');
    const pattern = envOf(container, 'ATELIER_K8S_DEPLOYMENT_PATTERN') ?? '';
    const role = find(manifests, 'Role', 'atelier-autoscaler') as unknown as {
      rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    };
    const scaling = role.rules.find((r) => r.resources.includes('deployments/scale'));
    assert.ok(scaling && ['get', 'patch', 'update'].every((v) => scaling.verbs.includes(v)));
    assert.deepEqual(
      scaling.resourceNames,
      FLEETS.map((t) => pattern.replace('{gpuType}', t)),
    );
    const binding = find(manifests, 'RoleBinding', 'atelier-autoscaler') as unknown as { subjects: unknown[] };
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'atelier-autoscaler', namespace: 'atelier' }]);
  });

  test("KEDA's ScaledObjects watch each fleet's two queues, scale down slowly, and replace Atelier's autoscaler", async () => {
    const { manifests } = await build('overlays/production-keda');
    for (const gpuType of FLEETS) {
      const scaled = find(manifests, 'ScaledObject', `atelier-gpu-${gpuType}`) as unknown as {
        spec: {
          scaleTargetRef: { name: string };
          minReplicaCount: number;
          advanced: {
            horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: number } } };
          };
          triggers: { type: string; metadata: Record<string, string> }[];
        };
      };
      find(manifests, 'Deployment', scaled.spec.scaleTargetRef.name);
      assert.ok(scaled.spec.minReplicaCount >= 1);
      const { scaleDown } = scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior;
      assert.ok(scaleDown.stabilizationWindowSeconds >= 300);
      const queues = scaled.spec.triggers.filter((t) => t.type === 'temporal').map((t) => t.metadata.taskQueue);
      assert.deepEqual(queues, [gpuTaskQueue(REGION, gpuType), relaxTaskQueue(REGION, gpuType)]);
      assert.ok(scaled.spec.triggers.some((t) => t.type === 'prometheus' && t.metadata.query?.includes(gpuType)));
    }
    const { container } = podOf(find(manifests, 'Deployment', 'atelier-control-worker'));
    assert.equal(envOf(container, 'ATELIER_AUTOSCALER'), 'false');
    assert.ok(!manifests.some((m) => m.kind === 'Role' || m.kind === 'RoleBinding'));
  });
});

describe('Temporal Helm values and Prometheus rules', () => {
  test('Temporal on external PostgreSQL with SQL visibility, several replicas, and our search attributes', async () => {
    const values = load(await fs.readFile(path.join(K8S, 'temporal-helm-values.yaml'), 'utf8')) as HelmValues;
    const { persistence } = values.server.config;
    for (const store of [persistence.defaultStore, persistence.visibilityStore]) {
      const sql = persistence.datastores[store]?.sql;
      assert.equal(sql?.pluginName, 'postgres12', `${store} is not on PostgreSQL`);
      assert.equal(sql?.existingSecret, 'temporal-postgres');
    }
    for (const bundled of ['cassandra', 'mysql', 'postgresql', 'elasticsearch'] as const) {
      assert.equal(values[bundled].enabled, false, `${bundled} should be off`);
    }
    for (const service of ['frontend', 'history', 'matching', 'worker'] as const) {
      assert.ok(values.server[service].replicaCount >= 2, `${service} needs two replicas or more`);
    }
    const job = values.extraObjects[0] as Manifest;
    const { container } = podOf(job);
    // The CLI's spelling of the types Atelier uses; a new type fails here until the Job and this table learn it.
    const cliType: Record<string, string> = { KEYWORD: 'Keyword', BOOL: 'Bool' };
    const expected = SEARCH_ATTRIBUTES.map((a) => `${a.name}:${cliType[a.type] ?? a.type}`);
    assert.deepEqual(envOf(container, 'ATELIER_SEARCH_ATTRIBUTES')?.split(' '), expected);
    // The Job the chart renders from extraObjects is a manifest like the others.
    const report = await kubeconformValidate(kubeconform, schemas, dump(job));
    assert.equal(report.summary.valid, 1, describeProblems(report));
  });

  test('the rules ConfigMap holds the very rule file promtool tests', async () => {
    const manifests = built.get('base') ?? (await build('base')).manifests;
    const configMap = manifests.find(
      (m) => m.kind === 'ConfigMap' && m.metadata.name.startsWith('atelier-prometheus-'),
    );
    assert.ok(configMap, 'no rules ConfigMap');
    const rules = await fs.readFile(
      path.join(repoRoot(), 'infra', 'prometheus', 'rules', 'atelier-alerts.yml'),
      'utf8',
    );
    assert.deepEqual(configMap.data, { 'atelier-alerts.yml': rules });
  });
});

interface HelmValues {
  server: {
    config: {
      persistence: {
        defaultStore: string;
        visibilityStore: string;
        datastores: Record<string, { sql?: { pluginName?: string; existingSecret?: string } }>;
      };
    };
  } & Record<'frontend' | 'history' | 'matching' | 'worker', { replicaCount: number }>;
  extraObjects: unknown[];
  cassandra: { enabled: boolean };
  mysql: { enabled: boolean };
  postgresql: { enabled: boolean };
  elasticsearch: { enabled: boolean };
}
