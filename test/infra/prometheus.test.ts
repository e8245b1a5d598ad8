// The local stack's Prometheus: the real binary, started by startPrometheus, scrapes what the targets file lists
// (a small HTTP server here), loads Atelier's alerting rules, follows the file as it is rewritten (a process that
// goes away stops being scraped), and stops cleanly.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../infra/ports';
import { PrometheusStartError, startPrometheus, writeTargetsFile, type PrometheusHandle } from '../../infra/prometheus';
import { ProvisionError, resolvePrometheus } from '../../infra/provision';
import { createLogger } from '../../runtime/logger';
import { within } from '../helpers/deadline';
import { eventually } from '../helpers/eventually';

const log = createLogger('test.prometheus');
let binary: string;
let scratch: string;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  binary = process.env.PROMETHEUS_PATH || (await resolvePrometheus({ install: false })).prometheus;
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-prometheus-test-'));
});

after(async () => {
  for (const fn of cleanups.reverse()) await within('prometheus test cleanup', 30_000, fn);
  await fs.rm(scratch, { recursive: true, force: true });
});

/** An HTTP server that answers `/metrics` with `body`, as an Atelier process does. */
async function metricsServer(body: string): Promise<{ server: http.Server; target: string }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, target: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** The instant vector `query` evaluates to now. */
async function query(prometheus: PrometheusHandle, promql: string): Promise<Sample[]> {
  const response = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as { status: string; data: { result: Sample[] } };
  assert.equal(body.status, 'success');
  return body.data.result;
}

async function activeTargets(prometheus: PrometheusHandle): Promise<{ labels: Record<string, string> }[]> {
  const response = await fetch(`${prometheus.url}/api/v1/targets?state=active`);
  const body = (await response.json()) as { data: { activeTargets: { labels: Record<string, string> }[] } };
  return body.data.activeTargets;
}

describe('startPrometheus', () => {
  test('scrapes the targets in the file, with the rules loaded, and drops a target removed from it', async () => {
    // The process labels its own samples too (runtime/metrics.ts); the target's labels win.
    const { target } = await metricsServer(
      '# HELP atelier_ws_connections Open WebSocket connections\n# TYPE atelier_ws_connections gauge\n' +
        'atelier_ws_connections{process="gateway",region="us-west"} 3\n',
    );
    const targetsFile = path.join(scratch, 'targets', 'atelier.json');
    await writeTargetsFile(targetsFile, [{ target, labels: { process: 'gateway[test]' } }]);
    const prometheus = await startPrometheus({
      binary,
      dataDir: path.join(scratch, 'prometheus'),
      port: await freePort(),
      targetsFile,
      scrapeIntervalSeconds: 1,
      log,
    });
    cleanups.push(() => prometheus.stop());
    const ready = await fetch(`${prometheus.url}/-/ready`);
    assert.equal(ready.status, 200);

    await eventually(
      async () => (await query(prometheus, 'up{job="atelier"} == 1')).length === 1,
      30_000,
      'the target to be up',
    );
    const [sample, ...more] = await query(prometheus, 'atelier_ws_connections');
    assert.equal(more.length, 0);
    assert.equal(sample?.value[1], '3');
    assert.equal(sample?.metric.process, 'gateway[test]', 'the target label names the process');
    assert.equal(sample?.metric.exported_process, undefined, 'the sample’s own copy is dropped');
    assert.equal(sample?.metric.region, 'us-west', 'labels the target does not set are kept');

    const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
      data: { groups: { name: string; rules: { name: string }[] }[] };
    };
    const alerts = rules.data.groups.flatMap((g) => g.rules.map((r) => r.name));
    for (const alert of ['AtelierGpuVramHigh', 'AtelierSafetyPendingTooLong', 'AtelierWorkerDown']) {
      assert.ok(alerts.includes(alert), `${alert} not loaded (loaded: ${alerts.join(', ')})`);
    }

    await writeTargetsFile(targetsFile, []);
    await eventually(async () => (await activeTargets(prometheus)).length === 0, 30_000, 'the target to be dropped');
    await eventually(
      async () => (await query(prometheus, 'atelier_ws_connections')).length === 0,
      30_000,
      'the dropped target’s series to go stale',
    );

    await within('prometheus stop', 20_000, prometheus.stop());
    const exit = await prometheus.exited;
    assert.equal(exit.code, 0, 'SIGTERM is a clean shutdown');
  });

  test('refuses a port that something else already listens on', async () => {
    const { target } = await metricsServer('');
    const port = Number(target.split(':')[1]);
    await assert.rejects(
      startPrometheus({
        binary,
        dataDir: path.join(scratch, 'taken'),
        port,
        targetsFile: path.join(scratch, 'taken', 'targets.json'),
        log,
      }),
      (err: unknown) => err instanceof PrometheusStartError && /already listening/.test(err.message),
    );
  });
});

describe('writeTargetsFile', () => {
  test('writes file-based service discovery JSON, one group per target, atomically', async () => {
    const file = path.join(scratch, 'sd', 'targets.json');
    await writeTargetsFile(file, [
      { target: '127.0.0.1:9101', labels: { process: 'gpu-worker[a10g]', gpu_type: 'a10g' } },
    ]);
    assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')), [
      { targets: ['127.0.0.1:9101'], labels: { process: 'gpu-worker[a10g]', gpu_type: 'a10g' } },
    ]);
    assert.deepEqual(await fs.readdir(path.dirname(file)), ['targets.json'], 'no temporary file left behind');
  });

  test('rejects what Prometheus would only log and ignore', async () => {
    const file = path.join(scratch, 'sd', 'bad.json');
    await assert.rejects(
      writeTargetsFile(file, [{ target: 'http://127.0.0.1:9101', labels: { process: 'x' } }]),
      TypeError,
    );
    await assert.rejects(
      writeTargetsFile(file, [{ target: '127.0.0.1:9101', labels: { process: 'x', 'gpu-type': 'a' } }]),
      TypeError,
    );
  });
});

describe('resolvePrometheus', () => {
  test('PROMETHEUS_PATH and PROMTOOL_PATH win over PATH', async () => {
    const found = await resolvePrometheus({ install: false });
    const dir = path.join(scratch, 'explicit');
    await fs.mkdir(dir, { recursive: true });
    await fs.symlink(found.prometheus, path.join(dir, 'prometheus'));
    await fs.symlink(found.promtool, path.join(dir, 'promtool'));
    const explicit = { prometheus: path.join(dir, 'prometheus'), promtool: path.join(dir, 'promtool') };
    const env = { PROMETHEUS_PATH: explicit.prometheus, PROMTOOL_PATH: explicit.promtool, PATH: '/usr/bin:/bin' };
    assert.deepEqual(await resolvePrometheus({ env, install: false }), explicit);
  });

  test('an explicit path that does not exist is a clear error, not a fallback', async () => {
    const missing = path.join(scratch, 'nowhere', 'promtool');
    await assert.rejects(
      resolvePrometheus({ env: { PROMTOOL_PATH: missing, PATH: '/usr/bin:/bin' }, install: false }),
      (err: unknown) => err instanceof ProvisionError && err.message.includes(`PROMTOOL_PATH=${missing}`),
    );
  });
});
