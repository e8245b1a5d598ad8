// The worker processes' /metrics, from the entry points as `npm start` runs them, on a real Temporal dev server and
// Redis: a GPU worker on the simulated GPU reports inference time, images per pass, duty cycle and its modelled GPU
// memory beside the Temporal SDK's own `temporal_` metrics; a CPU-only ONNX worker reports no GPU memory at all; and
// the control worker samples the region's task-queue backlogs and the requests parked in pending_safety.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { validateGenerate, type GenerationRequest } from '../../core/request';
import { GenerationStatusKey, RegionKey } from '../../core/search-attributes';
import { startGenerationOptions } from '../../core/start-options';
import { freePort } from '../../infra/ports';
import { resolveTemporalCli } from '../../infra/provision';
import { startTemporalDevServer, type TemporalServerHandle } from '../../infra/temporal';
import { createLogger } from '../../runtime/logger';
import { within } from '../helpers/deadline';
import { eventually } from '../helpers/eventually';
import { testRedis, type TestRedis } from '../helpers/redis';

const REGION = 'metrics';
const GIB = 2 ** 30;

/** The value of the sample of `name` whose labels include all of `labels`; undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`))) return Number(match[3]);
  }
  return undefined;
}

interface WorkerProcess {
  readonly child: ChildProcess;
  readonly metricsUrl: string;
  output(): string;
}

describe('worker /metrics', () => {
  let dataDir: string;
  let server: TemporalServerHandle;
  let redis: TestRedis;
  let client: Client;
  const children: ChildProcess[] = [];

  /** Runs a worker entry point as `npm start` would (from source here), with its health port on. */
  async function spawnWorker(script: string, env: Record<string, string>): Promise<WorkerProcess> {
    const healthPort = await freePort();
    let output = '';
    const childEnv: NodeJS.ProcessEnv = {
      ...process.env,
      LOG_LEVEL: 'warn',
      TEMPORAL_ADDRESS: server.address,
      REDIS_URL: redis.url,
      ATELIER_REDIS_PREFIX: redis.prefix,
      ATELIER_REGION: REGION,
      ATELIER_STORAGE_DIR: path.join(dataDir, 'objects'),
      ATELIER_MODEL_CACHE_DIR: path.join(dataDir, 'models'),
      ATELIER_WORKER_HEALTH_PORT: String(healthPort),
      ...env,
    };
    delete childEnv.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', '..', 'workers', script)], {
      env: childEnv,
    });
    children.push(child);
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const worker = { child, metricsUrl: `http://127.0.0.1:${healthPort}/metrics`, output: () => output };
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.status === 200,
      60_000,
      `${script} to be ready; output: ${output}`,
    ).catch((err: unknown) => assert.fail(`${String(err)}\n${worker.output()}`));
    return worker;
  }

  async function scrape(worker: WorkerProcess): Promise<string> {
    const res = await fetch(worker.metricsUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    return res.text();
  }

  function request(fields: Record<string, unknown>): GenerationRequest {
    const result = validateGenerate(
      { type: 'generate', prompt: 'a quiet harbour', tier: 'fast', width: 512, height: 512, steps: 4, ...fields },
      { userId: 'metrics-user', region: REGION, now: Date.now(), newRequestId: () => 'unused', newSeed: () => 1 },
    );
    assert.ok(result.ok, JSON.stringify(result));
    return result.value;
  }

  before(async () => {
    const cliPath = process.env.TEMPORAL_CLI_PATH || (await resolveTemporalCli());
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-worker-metrics-'));
    const log = createLogger('worker-metrics-test').child({}, { level: 'warn' });
    server = await startTemporalDevServer({
      cliPath,
      dataDir,
      port: await freePort(),
      uiPort: false,
      log,
      onOutput: () => undefined,
    });
    redis = await testRedis();
    client = new Client({ connection: await Connection.connect({ address: server.address }) });
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await within(
      'the worker processes of this file',
      30_000,
      Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined))),
    );
    await client?.connection.close();
    await within('the Temporal dev server', 30_000, server?.stop() ?? Promise.resolve());
    await within('the test Redis clean-up', 10_000, redis?.cleanup() ?? Promise.resolve());
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('GPU and control workers: inference, batches, duty cycle, modelled memory, queues and the SDK metrics', async () => {
    const control = await spawnWorker('control-worker.ts', { ATELIER_CONTROL_QUEUE_METRICS_MS: '300' });
    const gpu = await spawnWorker('gpu-worker.ts', {
      ATELIER_GPU_TYPE: 'a10g',
      ATELIER_INFERENCE_BACKENDS: 'simulated',
      ATELIER_SIM_SPEEDUP: '20',
    });
    const done = request({ requestId: 'metrics-done', model: 'sdxl' });
    const { workflowType, ...options } = startGenerationOptions(done);
    await client.workflow.execute(workflowType, options);

    const text = await scrape(gpu);
    const labels = { model: 'sdxl', gpu_type: 'a10g', backend: 'simulated' };
    assert.equal(sample(text, 'atelier_inference_seconds_count', labels), 1, text);
    assert.ok((sample(text, 'atelier_inference_seconds_sum', labels) ?? 0) > 0);
    assert.equal(sample(text, 'atelier_batch_size_count', labels), 1, 'one pass');
    assert.equal(sample(text, 'atelier_batch_size_sum', labels), 1, 'of one image');
    const duty = sample(text, 'atelier_gpu_duty_cycle', { gpu_type: 'a10g', backend: 'simulated' }) ?? -1;
    assert.ok(duty > 0 && duty <= 1, `duty cycle ${duty}`);
    // Modelled: sdxl's weights (65% of its 12 GiB) stay resident on the a10g's 24 GiB once its job is done.
    const used = sample(text, 'atelier_gpu_memory_used_bytes', { gpu_type: 'a10g', process: 'gpu-worker' }) ?? 0;
    assert.ok(Math.abs(used - 7.8 * GIB) < 1024, `used ${used}`);
    assert.equal(sample(text, 'atelier_gpu_memory_total_bytes', { gpu_type: 'a10g' }), 24 * GIB);
    assert.ok(sample(text, 'atelier_event_loop_lag_seconds', { process: 'gpu-worker', region: REGION }) !== undefined);
    // The SDK's own metrics, from the same URL, with the same process and region labels.
    const sdk = { task_queue: `${REGION}.gpu-a10g`, process: 'gpu-worker', region: REGION };
    assert.ok((sample(text, 'temporal_activity_schedule_to_start_latency_seconds_count', sdk) ?? 0) >= 1, text);
    assert.ok((sample(text, 'temporal_activity_execution_latency_seconds_count', sdk) ?? 0) >= 1);
    assert.ok(sample(text, 'temporal_worker_task_slots_used', { task_queue: `${REGION}.gpu-a10g` }) !== undefined);

    // A turbo request waits on the H100 queue, which no worker polls; another is parked as pending_safety.
    const waiting = request({ requestId: 'metrics-waiting', model: 'sdxl-turbo', tier: 'turbo' });
    const start = startGenerationOptions(waiting);
    await client.workflow.start(start.workflowType, start);
    await client.workflow.start('generateImage', {
      workflowId: 'metrics-parked',
      taskQueue: `${REGION}.parked`,
      args: [],
      typedSearchAttributes: [
        { key: GenerationStatusKey, value: 'PendingSafety' },
        { key: RegionKey, value: REGION },
      ],
    });
    let last = '';
    await eventually(
      async () => {
        last = await scrape(control);
        const h100 = { task_queue: `${REGION}.gpu-h100`, task_type: 'activity' };
        return (
          sample(last, 'atelier_queue_backlog', h100) === 1 &&
          (sample(last, 'atelier_queue_backlog_age_seconds', h100) ?? 0) > 0 &&
          sample(last, 'atelier_requests_pending_safety', { process: 'control-worker', region: REGION }) === 1
        );
      },
      30_000,
      'the backlog on the H100 queue and the parked request in the control worker metrics',
    ).catch((err: unknown) => assert.fail(`${String(err)}\n${last}\n${control.output()}`));
    for (const taskType of ['workflow', 'activity']) {
      const labels = { task_queue: `${REGION}.control`, task_type: taskType };
      assert.ok(sample(last, 'atelier_queue_backlog', labels) !== undefined, `control ${taskType} backlog`);
    }
    assert.equal(sample(last, 'atelier_queue_backlog', { task_queue: `${REGION}.gpu-a10g` }), 0);
    assert.ok((sample(last, 'temporal_workflow_completed_total', { process: 'control-worker' }) ?? 0) >= 1);
    for (const id of [start.workflowId, 'metrics-parked']) await client.workflow.getHandle(id).terminate('test over');
  });

  test('a CPU-only ONNX GPU worker reports its passes and duty cycle but no GPU memory', async () => {
    const onnx = await spawnWorker('gpu-worker.ts', {
      ATELIER_GPU_TYPE: 'l4',
      ATELIER_INFERENCE_BACKENDS: 'onnx',
      ATELIER_ONNX_EXECUTION_PROVIDERS: 'cpu',
      ATELIER_ONNX_PRELOAD: 'tiny-sd',
    });
    const text = await scrape(onnx);
    assert.ok(sample(text, 'atelier_gpu_duty_cycle', { gpu_type: 'l4', backend: 'onnx:cpu' }) !== undefined, text);
    assert.equal(sample(text, 'atelier_model_corruptions_total', { model: 'tiny-sd' }), 0);
    assert.doesNotMatch(text, /atelier_gpu_memory_used_bytes/, 'no device, no figure');
    assert.doesNotMatch(text, /atelier_gpu_memory_total_bytes/);
    assert.match(text, /^temporal_\w+\{[^}]*process="gpu-worker"/m, 'the SDK metrics are appended');
  });
});
