// The supervised workers (workers/worker-runtime.ts) ride over a Temporal server restart: with requests queued
// and generating, the dev server is stopped and started again on the same SQLite file; the workers reconnect
// by themselves and every request completes, with exactly one terminal event each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backendsByModel, createControlActivities, createInferenceActivities } from '../../activities';
import { SimulatedGpuBackend } from '../../activities/inference/simulated';
import { RulesPromptScreen } from '../../activities/safety';
import { MODEL_NAMES } from '../../core/models';
import { validateGenerate, type GenerationRequest } from '../../core/request';
import { startGenerationOptions } from '../../core/start-options';
import { freePort } from '../../infra/ports';
import { resolveTemporalCli } from '../../infra/provision';
import { startTemporalDevServer, type TemporalServerHandle } from '../../infra/temporal';
import { RedisEventLog } from '../../runtime/event-log';
import { createLogger } from '../../runtime/logger';
import { FsObjectStore } from '../../runtime/object-store';
import { controlWorkerOptions } from '../../workers/control-worker';
import { gpuWorkerOptions } from '../../workers/gpu-worker';
import { SupervisedWorker } from '../../workers/worker-runtime';
import { testRedis, type TestRedis } from '../helpers/redis';
import { testWorkflowBundle } from '../helpers/temporal';

describe('workers across a Temporal server restart', () => {
  const log = createLogger('worker-restart-test');
  let dataDir: string;
  let port: number;
  let server: TemporalServerHandle;
  let redis: TestRedis;
  let workers: SupervisedWorker[] = [];
  let cliPath: string;

  const startServer = async (): Promise<void> => {
    server = await startTemporalDevServer({ cliPath, dataDir, port, uiPort: false, log, onOutput: () => undefined });
  };

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    cliPath = process.env.TEMPORAL_CLI_PATH || (await resolveTemporalCli());
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-restart-'));
    port = await freePort();
    await startServer();
    redis = await testRedis();
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await server?.stop();
    await redis?.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('a worker started while Temporal is down keeps reconnecting and polls once the server is up', async () => {
    await server.stop();
    const eventLog = new RedisEventLog(redis.redis, { prefix: redis.prefix });
    const store = new FsObjectStore(path.join(dataDir, 'objects'));
    const workflowBundle = await testWorkflowBundle();
    const early = new SupervisedWorker({
      name: 'early-control',
      temporalAddress: `127.0.0.1:${port}`,
      temporalNamespace: 'default',
      reconnectMaxBackoffMs: 500,
      log,
      workerOptions: () =>
        controlWorkerOptions({
          region: 'early',
          workflowBundle,
          activities: createControlActivities({ screen: new RulesPromptScreen(), store, eventLog }),
        }),
    });
    const started = early.start();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(early.running, false);
    assert.equal(early.describe().state, 'reconnecting');
    assert.ok((early.describe().restarts as number) >= 2, `retried: ${JSON.stringify(early.describe())}`);
    assert.match(String(early.describe().lastError), /connect|refused|unavailable/i);
    await startServer();
    await started;
    assert.equal(early.running, true);
    await early.stop();
    assert.equal(early.describe().state, 'stopped');
  });

  test('every request in flight during the restart completes once', async () => {
    const region = 'restart';
    const address = `127.0.0.1:${port}`;
    const eventLog = new RedisEventLog(redis.redis, { prefix: redis.prefix });
    const store = new FsObjectStore(path.join(dataDir, 'objects'));
    const workflowBundle = await testWorkflowBundle();
    // ~50 ms per step: each request generates for about half a second, so some are mid-inference at the stop.
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: 5 });
    const supervise = (name: string, options: () => ReturnType<typeof controlWorkerOptions>): SupervisedWorker =>
      new SupervisedWorker({ name, temporalAddress: address, temporalNamespace: 'default', reconnectMaxBackoffMs: 1000, log, workerOptions: options });
    workers = [
      supervise('control', () =>
        controlWorkerOptions({ region, workflowBundle, activities: createControlActivities({ screen: new RulesPromptScreen(), store, eventLog }) }),
      ),
      supervise('gpu', () =>
        gpuWorkerOptions({
          region,
          gpuType: 'a10g',
          slots: 2,
          activities: createInferenceActivities({ backends: backendsByModel([backend], MODEL_NAMES), store, eventLog, workerId: 'gpu-1' }),
        }),
      ),
    ];
    await Promise.all(workers.map((w) => w.start()));

    const connection = await Connection.connect({ address });
    const client = new Client({ connection });
    const requests: GenerationRequest[] = [];
    for (let i = 0; i < 6; i++) {
      const result = validateGenerate(
        { type: 'generate', requestId: `restart-${i}`, prompt: `a quiet harbour, variation ${i}`, model: 'sdxl', tier: 'fast', width: 512, height: 512, steps: 10, seed: i },
        { userId: 'user-r', region, now: Date.now(), newRequestId: () => 'unused', newSeed: () => 0 },
      );
      assert.ok(result.ok);
      requests.push(result.value);
      const { workflowType, ...options } = startGenerationOptions(result.value);
      await client.workflow.start(workflowType, options);
    }
    await connection.close();
    // Wait until inference is under way, then take the server away for a few seconds.
    const deadline = Date.now() + 20_000;
    while ((backend.status().counters.steps ?? 0) < 3) {
      assert.ok(Date.now() < deadline, 'inference started');
      await new Promise((r) => setTimeout(r, 20));
    }
    await server.stop();
    await new Promise((r) => setTimeout(r, 3000));
    log.warn({ during: workers.map((w) => w.describe()) }, 'workers during the outage');
    await startServer();

    const after = await Connection.connect({ address });
    try {
      const again = new Client({ connection: after });
      for (const req of requests) {
        const handle = again.workflow.getHandle(startGenerationOptions(req).workflowId);
        const result = (await handle.result()) as { images: unknown[] };
        assert.equal(result.images.length, 1, `${req.requestId} completed`);
        const events = await eventLog.read(handle.workflowId, 0);
        const terminal = events.filter((e) => e.type === 'completed' || e.type === 'failed');
        assert.deepEqual(terminal.map((e) => e.type), ['completed'], `${req.requestId}: exactly one terminal event`);
      }
    } finally {
      await after.close();
    }
    assert.ok(workers.every((w) => w.running), 'the workers are polling again');
  });
});
