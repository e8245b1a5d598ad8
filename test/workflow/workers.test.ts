// The worker processes: the GPU worker entry point (configuration errors, /healthz and /readyz, draining on
// SIGTERM), and the supervised workers (workers/worker-runtime.ts) riding over Temporal being down at start-up
// and a Temporal server restart with requests queued and generating (stopped and started again on the same
// SQLite file): the workers reconnect by themselves and every request completes, with one terminal event each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backendsByModel, createControlActivities, createInferenceActivities } from '../../activities';
import { SimulatedGpuBackend } from '../../inference/simulated';
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
import { SupervisedWorker, type SupervisedWorkerOptions } from '../../workers/worker-runtime';
import { testRedis, type TestRedis } from '../helpers/redis';
import { testWorkflowBundle } from '../helpers/temporal';
import { within } from '../helpers/deadline';

describe('workers', () => {
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
    // No shutdown signals: SIGTERM from the test runner must end this process, not start a worker drain.
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
    cliPath = process.env.TEMPORAL_CLI_PATH || (await resolveTemporalCli());
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-restart-'));
    port = await freePort();
    await startServer();
    redis = await testRedis();
  });

  after(async () => {
    await within('the worker processes started by this file', 30_000, Promise.all(workers.map((w) => w.stop())));
    await within('the Temporal dev server', 30_000, server?.stop() ?? Promise.resolve());
    await within('the test Redis clean-up', 10_000, redis?.cleanup() ?? Promise.resolve());
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** Runs workers/gpu-worker.ts as `npm start` would run its compiled form, with `env` added. */
  function spawnGpuWorker(env: Record<string, string>): {
    child: ChildProcess;
    output: () => string;
    exited: Promise<number | null>;
  } {
    let output = '';
    const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info', ...env };
    delete childEnv.ATELIER_GPU_TYPE;
    if (env.ATELIER_GPU_TYPE) childEnv.ATELIER_GPU_TYPE = env.ATELIER_GPU_TYPE;
    delete childEnv.NODE_TEST_CONTEXT;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '..', '..', 'workers', 'gpu-worker.ts')],
      { env: childEnv },
    );
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, output: () => output, exited };
  }

  test('the GPU worker refuses to start without a valid ATELIER_GPU_TYPE, naming the variable', async () => {
    for (const gpuType of ['', 'x100']) {
      const worker = spawnGpuWorker({ ATELIER_GPU_TYPE: gpuType, TEMPORAL_ADDRESS: `127.0.0.1:${port}` });
      assert.equal(await worker.exited, 1);
      assert.match(worker.output(), /ATELIER_GPU_TYPE.*(required|expected one of)/);
      assert.doesNotMatch(worker.output(), /\n\s+at /, 'a configuration error, not a stack trace');
    }
    for (const [variable, value, message] of [
      ['ATELIER_INFERENCE_BACKENDS', 'onnx,tpu', /ATELIER_INFERENCE_BACKENDS.*unknown backend "tpu"/],
      [
        'ATELIER_ONNX_EXECUTION_PROVIDERS',
        'cuda,metal',
        /ATELIER_ONNX_EXECUTION_PROVIDERS.*unknown execution provider "metal"/,
      ],
      ['ATELIER_ONNX_MAX_BATCH_SIZE', '0', /ATELIER_ONNX_MAX_BATCH_SIZE.*expected an integer/],
    ] as const) {
      const worker = spawnGpuWorker({
        ATELIER_GPU_TYPE: 'a10g',
        TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
        [variable]: value,
      });
      assert.equal(await worker.exited, 1, worker.output());
      assert.match(worker.output(), message);
      assert.doesNotMatch(worker.output(), /\n\s+at /, 'a configuration error, not a stack trace');
    }
  });

  test('the GPU worker reports health and readiness, and exits 0 on SIGTERM', async () => {
    const healthPort = await freePort();
    const worker = spawnGpuWorker({
      ATELIER_GPU_TYPE: 'l4',
      ATELIER_REGION: 'health',
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      REDIS_URL: redis.url,
      ATELIER_STORAGE_DIR: path.join(dataDir, 'objects'),
      ATELIER_WORKER_HEALTH_PORT: String(healthPort),
      ATELIER_MODEL_CACHE_DIR: path.join(dataDir, 'models'),
      ATELIER_ONNX_MAX_BATCH_SIZE: '4',
      ATELIER_ONNX_PRELOAD: 'tiny-sd',
    });
    try {
      const deadline = Date.now() + 30_000;
      let ready: { status: number; body: Record<string, unknown> } | undefined;
      while (Date.now() < deadline) {
        const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined);
        if (res) {
          ready = { status: res.status, body: (await res.json()) as Record<string, unknown> };
          if (res.status === 200) break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(ready?.status, 200, `ready: ${JSON.stringify(ready)}\n${worker.output()}`);
      assert.equal(ready.body.gpuType, 'l4');
      // Default backends: ONNX Runtime first (on CPU here), then the simulated GPU backend; slots fill one batch.
      const backends = ready.body.backends as {
        backend: string;
        ready: boolean;
        loadedModels: { model: string; memoryBytes: number }[];
      }[];
      assert.deepEqual(
        backends.map((b) => [b.backend, b.ready]),
        [
          ['onnx:cpu', true],
          ['simulated', true],
        ],
      );
      const [preloaded] = backends[0]?.loadedModels ?? [];
      assert.equal(preloaded?.model, 'tiny-sd', 'readiness names the loaded model');
      assert.ok((preloaded?.memoryBytes ?? 0) > 0, 'and the memory it uses');
      assert.match(worker.output(), /"slots":4/);
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/nope`)).status, 404);
      worker.child.kill('SIGTERM');
      assert.equal(await worker.exited, 0, worker.output());
      assert.match(worker.output(), /shut down cleanly/);
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    }
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
    const supervise = (name: string, options: SupervisedWorkerOptions['workerOptions']): SupervisedWorker =>
      new SupervisedWorker({
        name,
        temporalAddress: address,
        temporalNamespace: 'default',
        reconnectMaxBackoffMs: 1000,
        log,
        workerOptions: options,
      });
    workers = [
      supervise('control', () =>
        controlWorkerOptions({
          region,
          workflowBundle,
          activities: createControlActivities({ screen: new RulesPromptScreen(), store, eventLog }),
        }),
      ),
      supervise('gpu', () =>
        gpuWorkerOptions({
          region,
          gpuType: 'a10g',
          slots: 2,
          activities: createInferenceActivities({
            backends: backendsByModel([backend], MODEL_NAMES),
            store,
            eventLog,
            workerId: 'gpu-1',
          }),
        }),
      ),
    ];
    await Promise.all(workers.map((w) => w.start()));

    const connection = await Connection.connect({ address });
    const client = new Client({ connection });
    const requests: GenerationRequest[] = [];
    for (let i = 0; i < 6; i++) {
      const result = validateGenerate(
        {
          type: 'generate',
          requestId: `restart-${i}`,
          prompt: `a quiet harbour, variation ${i}`,
          model: 'sdxl',
          tier: 'fast',
          width: 512,
          height: 512,
          steps: 10,
          seed: i,
        },
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
        assert.deepEqual(
          terminal.map((e) => e.type),
          ['completed'],
          `${req.requestId}: exactly one terminal event`,
        );
      }
    } finally {
      await after.close();
    }
    assert.ok(
      workers.every((w) => w.running),
      'the workers are polling again',
    );
  });
});
