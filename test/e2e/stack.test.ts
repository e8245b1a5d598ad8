// End to end on the real local stack (the same launcher as `npm start`): Temporal dev server, Redis, gateway, one
// GPU worker per type and the control worker as separate processes. A WebSocket client submits requests and the
// test checks the events, the stored PNG, the search attributes operators filter on, and the CLI client. The stack
// runs with a non-default ATELIER_REDIS_PREFIX, which every process must honour for any event to reach the client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../infra/ports';
import { startStack, repoRoot, type StackHandle } from '../../infra/test-stack';
import { resolveTemporalCli } from '../../infra/provision';
import { connectTestSocket, type Frame, type TestSocket } from '../helpers/ws-client';
import { decodePng } from '../helpers/png';
import { noHooks, tinyBackend, tinyJob } from '../inference/fixtures';
import { Redis } from 'ioredis';
import { within } from '../helpers/deadline';
import { eventually } from '../helpers/eventually';

const run = promisify(execFile);
const PREFIX = 'e2e-custom:';

describe('local stack end to end', () => {
  let stack: StackHandle;
  let socket: TestSocket;
  const output: string[] = [];

  before(async () => {
    assert.ok(existsSync(path.join(repoRoot(), 'dist', 'gateway', 'main.js')), 'dist/ is built (npm test builds it)');
    stack = await startStack({
      gatewayPort: 0,
      prometheusPort: await freePort(),
      redisPrefix: PREFIX,
      env: { ATELIER_SIM_SPEEDUP: '20', LOG_LEVEL: 'warn' },
      onOutput: (name, line) => output.push(`${name}: ${line}`),
    } as Parameters<typeof startStack>[0]);
    socket = await connectTestSocket(stack.gatewayWsUrl, stack.apiKey);
  });

  after(async () => {
    await within('the test socket', 10_000, socket?.close() ?? Promise.resolve());
    await within('the local stack (gateway, workers, Redis, Temporal)', 60_000, stack?.stop() ?? Promise.resolve());
  });

  test('health and readiness answer', async () => {
    assert.equal((await fetch(`${stack.gatewayHttpUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${stack.gatewayHttpUrl}/readyz`)).status, 200);
  });

  test('every process uses the configured Redis prefix: the gateway finds its workers under it', async () => {
    // The control worker announces itself at start; the gateway's first check may predate it (then it rechecks).
    let last: unknown;
    await eventually(
      async () => {
        last = ((await (await fetch(`${stack.gatewayHttpUrl}/readyz`)).json()) as { checks: Record<string, unknown> })
          .checks.redisPrefix;
        return JSON.stringify(last) === JSON.stringify({ ok: true, prefix: PREFIX, state: 'agreed' });
      },
      30_000,
      'the gateway to find the control worker under its prefix',
    ).catch((err: unknown) => assert.fail(`${String(err)}; last redisPrefix check: ${JSON.stringify(last)}`));
  });

  test('a request runs through safety, a GPU queue and storage, and the client gets a real PNG of the requested size', async () => {
    const requestId = `e2e-${Date.now()}`;
    socket.send({
      type: 'generate',
      requestId,
      prompt: 'a lighthouse at dusk',
      model: 'sdxl',
      tier: 'fast',
      width: 512,
      height: 384,
      steps: 6,
      seed: 42,
    });
    const done = await socket.terminal(requestId, 120_000);
    assert.equal(done.type, 'completed', JSON.stringify(done));

    const frames = socket.framesFor(requestId);
    const types = frames.map((f) => f.type);
    assert.equal(types[0], 'accepted');
    assert.ok(types.includes('progress'), 'progress events arrived');
    const seqs = frames.map((f) => f.seq as number);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'events arrive in seq order',
    );
    assert.equal(new Set(seqs).size, seqs.length, 'no event delivered twice');
    const statuses = frames.filter((f) => f.type === 'status').map((f) => f.status);
    for (const s of ['queued', 'safety_check', 'generating', 'uploading'])
      assert.ok(statuses.includes(s as never), `status ${s}`);
    const lastProgress = frames.filter((f) => f.type === 'progress').at(-1) as Frame & {
      step: number;
      totalSteps: number;
    };
    assert.equal(lastProgress.step, 6);
    assert.equal(lastProgress.totalSteps, 6);

    const images = (done as Extract<Frame, { type: 'completed' }>).images;
    assert.equal(images.length, 1);
    const [image] = images;
    assert.ok(image);
    assert.deepEqual([image.width, image.height, image.seed], [512, 384, 42]);
    const res = await fetch(image.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const png = decodePng(Buffer.from(await res.arrayBuffer()));
    assert.deepEqual([png.width, png.height], [512, 384]);

    // Operators find it by search attribute in the Web UI / CLI.
    const accepted = frames[0] as Extract<Frame, { type: 'accepted' }>;
    const cli = await resolveTemporalCli();
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      const { stdout } = await run(cli, [
        'workflow',
        'list',
        '--address',
        stack.temporalAddress,
        '--namespace',
        stack.temporalNamespace,
        '--query',
        `GenerationStatus="Completed" AND Tier="fast" AND Model="sdxl" AND GpuType="a10g" AND UserId="dev"`,
        '-o',
        'json',
      ]);
      found = stdout.includes(accepted.workflowId);
      if (!found) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(found, `temporal workflow list --query 'GenerationStatus="Completed"' finds ${accepted.workflowId}`);

    // Its event log lives under the configured prefix, and nothing was written under the default one.
    const redis = new Redis(stack.redisUrl);
    try {
      assert.equal(
        await redis.exists(`${PREFIX}req:{${accepted.workflowId}}:events`),
        1,
        'the request log is under the prefix',
      );
      const [, defaultKeys] = await redis.scan('0', 'MATCH', 'atelier:*', 'COUNT', 10_000);
      assert.deepEqual(defaultKeys, [], 'no key under the default prefix');
    } finally {
      redis.disconnect();
    }
  });

  test('a tiny-sd request through the gateway returns the PNG onnxruntime produced in the GPU worker', async () => {
    const requestId = `tiny-${Date.now()}`;
    const params = {
      prompt: 'a lighthouse at dusk',
      negativePrompt: 'fog',
      width: 64,
      height: 48,
      steps: 3,
      seed: 7,
      guidanceScale: 7.5,
    };
    socket.send({ type: 'generate', requestId, model: 'tiny-sd', tier: 'fast', ...params });
    const done = await socket.terminal(requestId, 120_000);
    assert.equal(done.type, 'completed', JSON.stringify(done));
    const progress = socket.framesFor(requestId).filter((f) => f.type === 'progress') as (Frame & {
      step: number;
      totalSteps: number;
    })[];
    // Progress is throttled (100 ms), so fast steps may be merged, but the steps rise and the last one is always sent.
    const steps = progress.map((p) => p.step);
    assert.ok(steps.length > 0, 'progress events arrived');
    assert.deepEqual(
      steps,
      [...new Set(steps)].sort((a, b) => a - b),
      'progress steps rise',
    );
    assert.deepEqual([steps.at(-1), progress.at(-1)?.totalSteps], [3, 3], 'progress reaches the last step');

    const [image] = (done as Extract<Frame, { type: 'completed' }>).images;
    assert.ok(image);
    const served = Buffer.from(await (await fetch(image.url)).arrayBuffer());
    const png = decodePng(served);
    assert.deepEqual([png.width, png.height], [64, 48]);

    // The pipeline run here, in-process on the same committed model, gives the same bytes: the worker ran onnxruntime.
    const { backend, close } = await tinyBackend();
    try {
      const [direct] = await backend.generate(tinyJob(params), noHooks());
      assert.ok(direct);
      assert.ok(direct.png.equals(served), 'the served PNG is byte-identical to the ONNX pipeline output');
    } finally {
      await close();
    }
  });

  test('each tier and routing row reaches a worker of the routed GPU type', async () => {
    const cases = [
      { requestId: `turbo-${Date.now()}`, tier: 'turbo', model: 'sdxl-turbo', width: 512, height: 512, gpu: 'h100' },
      { requestId: `flux-${Date.now()}`, tier: 'relax', model: 'flux', width: 512, height: 512, gpu: 'a100' },
      {
        requestId: `batch-${Date.now()}`,
        tier: 'fast',
        model: 'sdxl',
        width: 256,
        height: 256,
        numImages: 2,
        gpu: 'a100-80gb',
      },
    ];
    for (const c of cases) {
      socket.send({
        type: 'generate',
        requestId: c.requestId,
        prompt: 'a red bicycle',
        model: c.model,
        tier: c.tier,
        width: c.width,
        height: c.height,
        steps: 2,
        numImages: c.numImages,
      });
    }
    for (const c of cases) {
      const done = await socket.terminal(c.requestId, 120_000);
      assert.equal(done.type, 'completed', `${c.requestId}: ${JSON.stringify(done)}`);
      assert.equal((done as Extract<Frame, { type: 'completed' }>).images.length, c.numImages ?? 1);
      const generating = socket.framesFor(c.requestId).find((f) => f.type === 'status' && f.status === 'generating');
      assert.ok(generating, 'generating status sent');
    }
  });

  test('the command-line client saves a valid PNG of the requested size', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'atelier-cli-'));
    const out = path.join(dir, 'x.png');
    await run(
      process.execPath,
      [
        path.join(repoRoot(), 'dist', 'client', 'generate-cli.js'),
        'a lighthouse at dusk',
        '--tier',
        'fast',
        '--width',
        '320',
        '--height',
        '256',
        '--steps',
        '3',
        '--out',
        out,
        '--url',
        stack.gatewayWsUrl,
        '--key',
        stack.apiKey,
      ],
      { timeout: 120_000 },
    );
    const png = decodePng(await readFile(out));
    assert.deepEqual([png.width, png.height], [320, 256]);
  });

  test('every process serves its metrics at the URL stack.json gives, and every Atelier metric answers', async () => {
    const stackFile = JSON.parse(await readFile(path.join(stack.dataDir, 'stack.json'), 'utf8')) as {
      processes: { name: string; metricsUrl?: string }[];
    };
    const targets = stackFile.processes.flatMap((p) => (p.metricsUrl ? [{ name: p.name, url: p.metricsUrl }] : []));
    assert.deepEqual(
      targets.map((t) => t.name).sort(),
      ['control-worker', 'gateway', ...stack.options.gpuTypes.map((t) => `gpu-worker[${t}]`), 'temporal'].sort(),
    );
    const names = [
      'atelier_ws_connections',
      'atelier_request_e2e_seconds',
      'atelier_request_queue_wait_seconds',
      'atelier_rejections_total',
      'atelier_inference_seconds',
      'atelier_batch_size',
      'atelier_gpu_duty_cycle',
      'atelier_gpu_memory_used_bytes',
      'atelier_gpu_memory_total_bytes',
      'atelier_model_corruptions_total',
      'atelier_event_loop_lag_seconds',
      'atelier_queue_backlog',
      'atelier_queue_backlog_age_seconds',
      'atelier_requests_pending_safety',
      'atelier_circuit_breaker_state',
      'atelier_worker_taking_work',
      'temporal_activity_schedule_to_start_latency_seconds',
      'temporal_workflow_task_schedule_to_start_latency_seconds',
      'temporal_worker_task_slots_used',
    ];
    /** Names with at least one sample (not just HELP and TYPE), in any process; and the processes with a lag sample. */
    const answering = new Set<string>();
    const lagging = new Set<string>();
    let texts: Record<string, string> = {};
    await eventually(
      async () => {
        texts = Object.fromEntries(
          await Promise.all(targets.map(async (t) => [t.name, await (await fetch(t.url)).text()] as const)),
        );
        for (const [target, text] of Object.entries(texts)) {
          for (const name of names) {
            if (new RegExp(`^${name}(_bucket|_sum|_count)?(\\{[^}]*\\})? \\S+$`, 'm').test(text)) answering.add(name);
          }
          if (/^atelier_event_loop_lag_seconds\{/m.test(text)) lagging.add(target);
        }
        return names.every((n) => answering.has(n));
      },
      30_000,
      'every metric to answer',
    ).catch(() => assert.fail(`no sample of ${names.filter((n) => !answering.has(n)).join(', ')}`));
    assert.deepEqual(
      [...lagging].sort(),
      targets
        .map((t) => t.name)
        .filter((n) => n !== 'temporal')
        .sort(),
    );
    // The requests of this file went through this gateway, and were timed.
    const completed = /^atelier_request_e2e_seconds_count\{[^}]*outcome="completed"[^}]*\} (\d+)$/gm;
    const count = [...(texts.gateway ?? '').matchAll(completed)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(count >= 5, `completed requests timed end to end: ${count}`);
    // Seed 001's breakers: the shared ones on the control worker (every model, and global), each GPU worker's own.
    assert.match(
      texts['control-worker'] ?? '',
      /^atelier_circuit_breaker_state\{[^}]*breaker="model"[^}]*name="sdxl"/m,
    );
    assert.match(texts['control-worker'] ?? '', /^atelier_circuit_breaker_state\{[^}]*breaker="global"/m);
    assert.match(texts['gpu-worker[a10g]'] ?? '', /^atelier_circuit_breaker_state\{[^}]*breaker="worker"[^}]*\} 0$/m);

    // The stack's Prometheus scrapes every process (all targets up) and answers a query for every metric.
    const query = async (promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
      const url = `${stack.prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`;
      return ((await (await fetch(url)).json()) as { data: { result: [] } }).data.result;
    };
    let inPrometheus = new Set<string>();
    let up: Record<string, string> = {};
    await eventually(
      async () => {
        up = Object.fromEntries((await query('up')).map((r) => [r.metric.process ?? '?', r.value[1]]));
        const counted = await query('count by (__name__) ({__name__=~"atelier_.+|temporal_.+"})');
        inPrometheus = new Set(counted.map((r) => (r.metric.__name__ ?? '').replace(/_(bucket|sum|count)$/, '')));
        const allUp = Object.keys(up).length === targets.length && Object.values(up).every((v) => v === '1');
        return allUp && names.every((n) => inPrometheus.has(n));
      },
      45_000,
      'Prometheus to scrape every metric',
    ).catch(() =>
      assert.fail(
        `up: ${JSON.stringify(up)}; not in Prometheus: ${names.filter((n) => !inPrometheus.has(n)).join(', ')}`,
      ),
    );
    assert.deepEqual(Object.keys(up).sort(), targets.map((t) => t.name).sort(), 'one target per process');
  });
});
