// The Kubernetes scale driver (issue 14) against a stub API server that answers the scale subresource as the real
// one does (kind Scale of autoscaling/v1, Status objects for errors, merge patches by content type, bearer tokens),
// through the real @kubernetes/client-node: the exact requests, the replicas read back, a missing Deployment left
// out, API errors with the server's message, invalid replicas refused before any call, the per-call bound, the
// option table, and the autoscaler's activities over this driver.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import { createAutoscalerActivities } from '../../activities/autoscaler';
import type { FleetSignals } from '../../core/autoscale';
import type { GpuType } from '../../core/gpu';
import { parseRegionCatalogue } from '../../core/regions';
import { contextNamespace, KubernetesScaleDriver, KubernetesScaleError } from '../../runtime/k8s-scale-driver';
import { resolveOptions } from '../../runtime/options';
import { RedisDesiredReplicas } from '../../runtime/scale-driver';
import { AUTOSCALER_OPTIONS, createScaleDriver } from '../../workers/autoscaler-starter';

const TOKEN = 'stub-service-account-token';
const NS = 'gpu-ns';
const SCALE_PATH = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)\/scale$/;

interface Recorded {
  method: string;
  url: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: string;
}

/** The API server's part that the driver uses: deployments' scale subresource, as kube-apiserver answers it. */
class StubApiServer {
  readonly requests: Recorded[] = [];
  /** `namespace/name` -> spec and status replicas. */
  readonly deployments = new Map<string, { desired: number; running: number }>();
  /** `namespace/name` -> the error Status the server answers for it. */
  readonly failures = new Map<string, { code: number; reason: string; message: string }>();
  readonly hanging = new Set<string>();
  private readonly server = http.createServer((req, res) => void this.handle(req, res));

  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const url = new URL(req.url ?? '/', 'http://stub');
    const { method = '', headers } = req;
    this.requests.push({
      method,
      url: req.url ?? '',
      contentType: headers['content-type'],
      authorization: headers.authorization,
      body,
    });
    const send = (code: number, json: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    };
    const match = SCALE_PATH.exec(url.pathname);
    if (headers.authorization !== `Bearer ${TOKEN}`) return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    if (!match) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
    const [, namespace = '', name = ''] = match;
    const key = `${namespace}/${name}`;
    if (this.hanging.has(key)) return;
    const failure = this.failures.get(key);
    if (failure) return send(failure.code, status(failure.code, failure.reason, failure.message));
    const deployment = this.deployments.get(key);
    if (!deployment) return send(404, status(404, 'NotFound', `deployments.apps "${name}" not found`));
    if (method === 'PATCH') {
      const type = headers['content-type'];
      if (type !== 'application/merge-patch+json' && type !== 'application/strategic-merge-patch+json') {
        return send(415, status(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format'));
      }
      const replicas = (JSON.parse(body) as { spec?: { replicas?: unknown } }).spec?.replicas;
      if (!Number.isInteger(replicas) || (replicas as number) < 0) {
        return send(422, status(422, 'Invalid', `Scale.autoscaling "${name}" is invalid: spec.replicas`));
      }
      deployment.desired = replicas as number;
    } else if (method !== 'GET') {
      return send(405, status(405, 'MethodNotAllowed', 'the server does not allow this method'));
    }
    send(200, {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name, namespace, uid: '0d3c5a9e-1111-4c1e-9f00-5ab1e0000000', resourceVersion: '4242' },
      spec: { replicas: deployment.desired },
      status: { replicas: deployment.running, selector: `app.kubernetes.io/name=${name}` },
    });
  }
}

function status(code: number, reason: string, message: string): unknown {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

async function stubKubeConfig(port: number, token = TOKEN, namespace?: string): Promise<KubeConfig> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    // Plain HTTP to the stub; the client only allows it with TLS verification explicitly off.
    clusters: [{ name: 'stub', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'autoscaler', token }],
    contexts: [{ name: 'stub', cluster: 'stub', user: 'autoscaler', ...(namespace ? { namespace } : {}) }],
    currentContext: 'stub',
  });
  return kc;
}

const scalePath = (name: string, ns = NS): string => `/apis/apps/v1/namespaces/${ns}/deployments/${name}/scale`;

describe('KubernetesScaleDriver', () => {
  const stub = new StubApiServer();
  let port: number;
  const driver = (
    pattern = 'atelier-gpu-{gpuType}',
    options: { token?: string; timeoutMs?: number; fleets?: () => GpuType[] } = {},
  ) =>
    new KubernetesScaleDriver(
      {
        namespace: NS,
        deploymentPattern: pattern,
        homeRegion: 'home',
        requestTimeoutMs: options.timeoutMs ?? 5_000,
        ...(options.fleets ? { fleets: options.fleets } : {}),
      },
      () => stubKubeConfig(port, options.token),
    );

  before(async () => {
    port = await stub.start();
  });
  after(() => stub.stop());
  beforeEach(() => {
    stub.requests.length = 0;
    stub.deployments.clear();
    stub.failures.clear();
    stub.hanging.clear();
    stub.deployments.set(`${NS}/atelier-gpu-a10g`, { desired: 3, running: 2 });
    stub.deployments.set(`${NS}/atelier-gpu-h100`, { desired: 0, running: 0 });
  });

  test("replicas() reads each fleet's scale subresource; fleets without a Deployment are absent", async () => {
    const d = driver();
    assert.deepEqual(await d.replicas('home'), { a10g: 3, h100: 0 });
    assert.deepEqual(
      stub.requests.map((r) => [r.method, r.url, r.authorization, r.body]).sort(),
      ['a10g', 'l4', 'a100', 'a100-80gb', 'h100']
        .map((t) => ['GET', scalePath(`atelier-gpu-${t}`), `Bearer ${TOKEN}`, ''])
        .sort(),
    );
    assert.deepEqual(await d.fleetScales('home'), {
      a10g: { desired: 3, running: 2 },
      h100: { desired: 0, running: 0 },
    });
    stub.requests.length = 0;
    const catalogued = driver(undefined, { fleets: () => ['a10g', 'l4'] });
    assert.deepEqual(await catalogued.replicas('home'), { a10g: 3 }, 'only the fleets of the region are read');
    assert.deepEqual(stub.requests.map((r) => r.url).sort(), [
      scalePath('atelier-gpu-a10g'),
      scalePath('atelier-gpu-l4'),
    ]);
  });

  test("setReplicas() sends one merge patch of spec.replicas to the Deployment's scale subresource", async () => {
    const d = driver();
    await d.setReplicas('home', 'a10g', 7);
    assert.deepEqual(stub.requests, [
      {
        method: 'PATCH',
        url: `${scalePath('atelier-gpu-a10g')}?fieldManager=atelier-autoscaler`,
        contentType: 'application/merge-patch+json',
        authorization: `Bearer ${TOKEN}`,
        body: '{"spec":{"replicas":7}}',
      },
    ]);
    assert.deepEqual(stub.deployments.get(`${NS}/atelier-gpu-a10g`), { desired: 7, running: 2 });
    assert.equal((await d.replicas('home')).a10g, 7);
  });

  test('a pattern with {region} names each region; without it only the home region is scaled', async () => {
    stub.deployments.set(`${NS}/atelier-gpu-l4-eu-west`, { desired: 1, running: 1 });
    await driver('atelier-gpu-{gpuType}-{region}').setReplicas('eu-west', 'l4', 2);
    assert.deepEqual(
      stub.requests.map((r) => r.url),
      [`${scalePath('atelier-gpu-l4-eu-west')}?fieldManager=atelier-autoscaler`],
    );
    stub.requests.length = 0;
    const homeOnly = driver();
    assert.deepEqual(await homeOnly.replicas('eu-west'), {});
    await assert.rejects(homeOnly.setReplicas('eu-west', 'l4', 2), /does not scale region eu-west's l4 fleet/);
    assert.equal(stub.requests.length, 0, 'no call for a region the driver does not scale');
  });

  test("API errors carry the HTTP status and the API server's message", async () => {
    const forbidden = `deployments.apps "atelier-gpu-a10g" is forbidden: User "system:serviceaccount:${NS}:autoscaler" cannot get resource "deployments/scale"`;
    stub.failures.set(`${NS}/atelier-gpu-a10g`, { code: 403, reason: 'Forbidden', message: forbidden });
    stub.failures.set(`${NS}/atelier-gpu-h100`, {
      code: 500,
      reason: 'InternalError',
      message: 'etcdserver: request timed out',
    });
    const d = driver();
    // Fleets read in parallel: l4 (absent) beside a10g keeps which failure comes first certain.
    await assert.rejects(
      driver(undefined, { fleets: () => ['a10g', 'l4'] }).replicas('home'),
      (err: KubernetesScaleError) => {
        assert.ok(err instanceof KubernetesScaleError);
        assert.equal(err.status, 403);
        assert.equal(
          err.message,
          `Kubernetes API GET deployments/atelier-gpu-a10g/scale in namespace ${NS} failed: HTTP 403: Forbidden: ${forbidden}`,
        );
        return true;
      },
    );
    await assert.rejects(d.setReplicas('home', 'h100', 1), (err: KubernetesScaleError) => {
      assert.equal(err.status, 500);
      assert.match(
        err.message,
        /PATCH deployments\/atelier-gpu-h100\/scale .* HTTP 500: InternalError: etcdserver: request timed out$/,
      );
      return true;
    });
    await assert.rejects(
      d.setReplicas('home', 'l4', 1),
      /HTTP 404: NotFound: deployments.apps "atelier-gpu-l4" not found$/,
    );
    await assert.rejects(
      driver(undefined, { token: 'wrong' }).setReplicas('home', 'a10g', 1),
      /HTTP 401: Unauthorized$/,
    );
  });

  test('invalid replicas and GPU types are refused before any call', async () => {
    const d = driver();
    for (const n of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      await assert.rejects(d.setReplicas('home', 'a10g', n), RangeError, `replicas ${n}`);
    }
    await assert.rejects(d.setReplicas('home', 'tpu' as GpuType, 1), RangeError);
    assert.equal(stub.requests.length, 0);
    assert.throws(() => driver('atelier-gpu'), /needs \{gpuType\}/);
  });

  test('a call the API server never answers fails within its bound', async () => {
    stub.hanging.add(`${NS}/atelier-gpu-a10g`);
    const started = Date.now();
    await assert.rejects(
      driver(undefined, { timeoutMs: 300 }).setReplicas('home', 'a10g', 4),
      /no answer within 300 ms/,
    );
    assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
  });

  test("an empty namespace is the kube config context's, else default", async () => {
    stub.deployments.set('team-a/atelier-gpu-a10g', { desired: 1, running: 1 });
    const d = new KubernetesScaleDriver(
      { namespace: '', deploymentPattern: 'atelier-gpu-{gpuType}', homeRegion: 'home', requestTimeoutMs: 5_000 },
      () => stubKubeConfig(port, TOKEN, 'team-a'),
    );
    await d.setReplicas('home', 'a10g', 2);
    assert.equal(stub.requests[0]?.url, `${scalePath('atelier-gpu-a10g', 'team-a')}?fieldManager=atelier-autoscaler`);
    assert.equal(contextNamespace(await stubKubeConfig(port)), 'default');
  });

  test("the autoscaler's activities sample and apply through the driver", async () => {
    const catalogue = parseRegionCatalogue({
      regions: [{ name: 'home', role: 'primary', models: ['sdxl'], fleets: { a10g: 6, l4: 2 }, neighbours: [] }],
    });
    const steps: string[] = [];
    const acts = createAutoscalerActivities({
      capacity: { read: () => Promise.resolve(undefined) },
      workers: { workers: () => Promise.resolve([]) },
      driver: driver(),
      catalogue: () => catalogue,
      onStep: (region, step) => steps.push(`${region}:${step.gpuType}->${step.to}`),
    });
    const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
    const fleets: FleetSignals[] = await env.run(acts.sampleFleets, { region: 'home' });
    assert.deepEqual(
      fleets.map((f) => [f.gpuType, f.replicas]),
      [
        ['a10g', 3],
        ['l4', 0],
      ],
      'the Deployment gives a10g its figure; l4 has none and falls back to its live workers',
    );
    const decision = { gpuType: 'a10g', from: 3, to: 5, action: 'up', fired: [], reason: 'test' } as const;
    await env.run(acts.applyScale, { region: 'home', decisions: [decision] });
    assert.deepEqual(stub.deployments.get(`${NS}/atelier-gpu-a10g`), { desired: 5, running: 2 });
    assert.deepEqual(steps, ['home:a10g->5']);
  });
});

describe('scale driver options', () => {
  test('ATELIER_SCALE_DRIVER picks the driver; the Kubernetes options are checked at start', () => {
    const options = resolveOptions(AUTOSCALER_OPTIONS, {
      ATELIER_SCALE_DRIVER: 'kubernetes',
      ATELIER_K8S_NAMESPACE: 'gpus',
      ATELIER_K8S_DEPLOYMENT_PATTERN: 'gpu-{region}-{gpuType}',
    });
    assert.equal(options.scaleDriver, 'kubernetes');
    assert.equal(options.k8sNamespace, 'gpus');
    assert.equal(options.k8sDeploymentPattern, 'gpu-{region}-{gpuType}');
    const redis = {} as Redis;
    assert.ok(createScaleDriver(options, 'home', redis, 'p:') instanceof KubernetesScaleDriver);
    const defaults = resolveOptions(AUTOSCALER_OPTIONS, {});
    assert.equal(defaults.scaleDriver, 'local');
    assert.equal(defaults.k8sDeploymentPattern, 'atelier-gpu-{gpuType}');
    assert.ok(createScaleDriver(defaults, 'home', redis, 'p:') instanceof RedisDesiredReplicas);
    assert.throws(
      () => resolveOptions(AUTOSCALER_OPTIONS, { ATELIER_SCALE_DRIVER: 'k8s' }),
      /ATELIER_SCALE_DRIVER="k8s": expected one of local, kubernetes/,
    );
    for (const pattern of ['atelier-gpu', 'atelier-gpu-{gpuType}-{zone}']) {
      assert.throws(
        () => resolveOptions(AUTOSCALER_OPTIONS, { ATELIER_K8S_DEPLOYMENT_PATTERN: pattern }),
        /ATELIER_K8S_DEPLOYMENT_PATTERN: deployment pattern/,
      );
    }
  });
});
