// Full request flow through the gateway with real workers (the production control worker and GPU workers with the
// simulated backend) on a real Temporal dev server: delivery order from accepted to completed, image download,
// cancel, re-attach after completion, AtelierClient reconnecting across a gateway restart, and the CLI (with
// capability and with signed image URLs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { generationWorkflowId } from '../../core/request';
import { freePort } from '../../infra/ports';
import { AtelierClient, AuthenticationError, RequestRejectedError, type RequestEventFrame } from '../../client/client';
import { EXIT, parseGenerateArgs, runGenerate, type GenerateCommand } from '../../client/generate-cli';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';
import { decodePng } from '../helpers/png';
import { startTestGateway, uniqueRequestId, type TestGateway } from './harness';

const KEY = 'test-key-alice';

/** Asserts frames are one request's log delivered once each, in order, from seq 1, ending with the terminal frame. */
function assertCompleteLog(frames: RequestEventFrame[]): void {
  assert.equal(frames[0]?.type, 'accepted');
  assert.deepEqual(
    frames.map((f) => f.seq),
    frames.map((_, i) => i + 1),
    `contiguous seqs: ${frames.map((f) => `${f.seq}:${f.type}`).join(' ')}`,
  );
  const terminal = frames.filter((f) => f.type === 'completed' || f.type === 'failed');
  assert.equal(terminal.length, 1);
  assert.equal(frames.at(-1), terminal[0]);
}

/** A log replayed after its request ended: statuses, the last progress and the outcome, in order. */
function assertEndedLog(frames: RequestEventFrame[]): void {
  assert.equal(frames[0]?.type, 'accepted');
  const seqs = frames.map((f) => f.seq);
  assert.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b),
    'increasing seqs',
  );
  assert.equal(new Set(seqs).size, seqs.length, 'each frame once');
  assert.ok(frames.filter((f) => f.type === 'progress').length <= 1, 'at most the last progress frame');
  const statuses = frames.flatMap((f) => (f.type === 'status' ? [f.status] : []));
  const kept = ['queued', 'generating', 'uploading'];
  assert.deepEqual(
    statuses.filter((s) => kept.includes(s)),
    kept,
    `statuses: ${statuses.join(' ')}`,
  );
  const terminal = frames.filter((f) => f.type === 'completed' || f.type === 'failed');
  assert.equal(terminal.length, 1);
  assert.equal(frames.at(-1), terminal[0]);
}

/** A stderr stand-in that records what the CLI writes. */
function captureStream(): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  return {
    isTTY: false,
    write(chunk: string | Uint8Array) {
      chunks.push(String(chunk));
      return true;
    },
    text: () => chunks.join(''),
  } as unknown as NodeJS.WriteStream & { text: () => string };
}

void describe('gateway with real workers', () => {
  let env: TestWorkflowEnvironment;
  let harness: GenerationHarness;
  let gw: TestGateway;

  before(async () => {
    env = await createTemporalTestEnv();
    harness = await startGenerationHarness(env, {
      gpus: {
        a10g: { speedup: 1000 },
        'a100-80gb': { speedup: 1000 },
        // Real-time latency: turbo requests run long enough to be cancelled or to outlive a gateway restart.
        h100: { speedup: 1 },
      },
    });
    gw = await startTestGateway(
      { region: harness.region, redisPrefix: harness.redis.prefix },
      { temporalClient: env.client, objectStore: harness.store },
    );
  });
  after(async () => {
    await gw?.stop();
    await harness?.stop();
    await env?.teardown();
  });

  void test('a request goes accepted -> status -> progress -> completed in seq order, and its image downloads', async () => {
    const client = await AtelierClient.connect({ url: gw.address.wsUrl, apiKey: KEY });
    const frames: RequestEventFrame[] = [];
    const done = await client.generate(
      { prompt: 'a lighthouse at dusk', model: 'sdxl', tier: 'fast', width: 512, height: 384, steps: 6, seed: 9 },
      (f) => frames.push(f),
    );
    assert.equal(done.type, 'completed', JSON.stringify(done));
    assertCompleteLog(frames);
    const statuses = frames.flatMap((f) => (f.type === 'status' ? [f.status] : []));
    assert.deepEqual(statuses, ['queued', 'safety_check', 'generating', 'uploading']);
    // Progress is throttled by the inference activity (at most ~10 events a second), so steps may be skipped,
    // but they only go forward and the last step is always reported.
    const steps = frames.flatMap((f) => (f.type === 'progress' ? [f.step] : []));
    assert.ok(steps.length > 0);
    assert.deepEqual(
      steps,
      [...steps].sort((a, b) => a - b),
    );
    assert.equal(steps.at(-1), 6);

    assert.equal(done.type === 'completed' && done.images.length, 1);
    const image = done.type === 'completed' ? done.images[0] : undefined;
    assert.ok(image);
    assert.ok(image.url.startsWith(`${gw.address.publicBaseUrl}/v1/images/images/alice/`), image.url);
    const res = await fetch(image.url);
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.headers.get('etag'), `"${createHash('sha256').update(body).digest('hex')}"`);
    const png = decodePng(body);
    assert.deepEqual([png.width, png.height, image.width, image.height, image.seed], [512, 384, 512, 384, 9]);
    await client.close();
  });

  void test('re-sending a finished request replays its log instead of generating again', async () => {
    const client = await AtelierClient.connect({ url: gw.address.wsUrl, apiKey: KEY });
    const requestId = uniqueRequestId('replay');
    const request = {
      requestId,
      prompt: 'a quiet harbour',
      model: 'sdxl',
      tier: 'relax',
      width: 256,
      height: 256,
      steps: 4,
    } as const;
    const first = await client.generate(request);
    assert.equal(first.type, 'completed', JSON.stringify(first));
    const jobsBefore = harness.backends.get('a10g')?.status().counters.jobs;

    const replayed: RequestEventFrame[] = [];
    const again = await client.generate(request, (f) => replayed.push(f));
    assert.deepEqual(again, first);
    assertEndedLog(replayed);
    assert.equal(harness.backends.get('a10g')?.status().counters.jobs, jobsBefore, 'no second inference');
    await client.close();
  });

  void test('cancel ends a running request with exactly one failed CANCELLED', async () => {
    const client = await AtelierClient.connect({ url: gw.address.wsUrl, apiKey: KEY });
    const requestId = uniqueRequestId('cancel');
    const frames: RequestEventFrame[] = [];
    let cancelled = false;
    const done = await client.generate(
      {
        requestId,
        prompt: 'a storm over the sea',
        model: 'sdxl',
        tier: 'turbo',
        width: 2048,
        height: 2048,
        steps: 150,
      },
      (f) => {
        frames.push(f);
        if (f.type === 'progress' && !cancelled) cancelled = client.cancel(requestId);
      },
    );
    assert.equal(done.type, 'failed');
    assert.equal(done.type === 'failed' && done.code, 'CANCELLED');
    assertCompleteLog(frames);
    assert.ok(frames.filter((f) => f.type === 'progress').length < 150, 'stopped before the last step');
    // Cancelling again after the end changes nothing: no second terminal event in the log.
    client.cancel(requestId);
    await new Promise((r) => setTimeout(r, 500));
    const log = await harness.eventLog.read(generationWorkflowId('alice', requestId), 0);
    assert.equal(log.filter((e) => e.type === 'completed' || e.type === 'failed').length, 1);
    await client.close();
  });

  void test('the client reconnects after a gateway restart (1001) and re-attaches without a second workflow', async () => {
    const port = await freePort();
    const startOn = (): Promise<TestGateway> =>
      startTestGateway(
        { port, region: harness.region, redisPrefix: harness.redis.prefix },
        { temporalClient: env.client, objectStore: harness.store },
      );
    let current = await startOn();
    const client = await AtelierClient.connect({ url: current.address.wsUrl, apiKey: KEY, reconnectWindowMs: 30_000 });
    const requestId = uniqueRequestId('moved');
    const frames: RequestEventFrame[] = [];
    let restarted: Promise<void> | null = null;
    const done = await client.generate(
      {
        requestId,
        prompt: 'a lighthouse in the rain',
        model: 'sdxl',
        tier: 'turbo',
        width: 1024,
        height: 1024,
        steps: 40,
      },
      (f) => {
        frames.push(f);
        if (f.type === 'progress' && restarted === null) {
          restarted = (async () => {
            await current.stop();
            current = await startOn();
          })();
        }
      },
    );
    await restarted;
    assert.equal(done.type, 'completed', JSON.stringify(done));
    assertCompleteLog(frames);
    const workflowId = generationWorkflowId('alice', requestId);
    assert.equal((await env.client.workflow.count(`WorkflowId = "${workflowId}"`)).count, 1);
    await client.close();
    await current.stop();
  });

  void test('the generate CLI saves every image, and exits non-zero on rejection or a refused key', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-cli-'));
    try {
      const out = path.join(dir, 'lighthouse.png');
      const cmd = parseGenerateArgs(
        [
          'a',
          'lighthouse',
          '--model',
          'sdxl',
          '--width',
          '256',
          '--height',
          '256',
          '--steps',
          '4',
          '--seed',
          '5',
          '--num-images',
          '2',
          '--out',
          out,
          '--url',
          gw.address.wsUrl,
          '--key',
          KEY,
        ],
        {},
      ) as GenerateCommand;
      const stderr = captureStream();
      assert.equal(await runGenerate(cmd, stderr), EXIT.OK, stderr.text());
      for (const [file, seed] of [
        [out, 5],
        [path.join(dir, 'lighthouse-1.png'), 6],
      ] as const) {
        const png = decodePng(await readFile(file));
        assert.deepEqual([png.width, png.height], [256, 256]);
        assert.match(
          stderr.text(),
          new RegExp(`saved ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(256x256, seed ${seed}`),
        );
      }
      assert.match(stderr.text(), /generating \[#+\.*\] \d+\/4/);

      const rejected = captureStream();
      const bad = parseGenerateArgs(
        ['x', '--width', '1000', '--height', '1004', '--url', gw.address.wsUrl, '--key', KEY],
        {},
      ) as GenerateCommand;
      assert.equal(await runGenerate(bad, rejected), EXIT.FAILED);
      assert.match(rejected.text(), /INVALID_SIZE/);

      const refused = captureStream();
      const wrongKey = parseGenerateArgs(['x', '--url', gw.address.wsUrl, '--key', 'nope'], {}) as GenerateCommand;
      assert.equal(await runGenerate(wrongKey, refused), EXIT.UNREACHABLE);
      assert.match(refused.text(), /401/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test('with signed image URLs, AtelierClient and the CLI download through the signed URLs of completed', async () => {
    const signed = await startTestGateway(
      {
        region: harness.region,
        redisPrefix: harness.redis.prefix,
        imageAccess: 'signed',
        imageUrlSecrets: 'k1:0123456789abcdef0123456789abcdef',
      },
      { temporalClient: env.client, objectStore: harness.store },
    );
    const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-cli-'));
    try {
      const client = await AtelierClient.connect({ url: signed.address.wsUrl, apiKey: KEY });
      const done = await client.generate({
        prompt: 'a signed harbour',
        model: 'sdxl',
        tier: 'fast',
        width: 256,
        height: 256,
        steps: 2,
      });
      await client.close();
      const image = done.type === 'completed' ? done.images[0] : undefined;
      assert.ok(image, JSON.stringify(done));
      const url = new URL(image.url);
      assert.deepEqual([...url.searchParams.keys()], ['exp', 'kid', 'sig']);
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.deepEqual(decodePng(Buffer.from(await res.arrayBuffer())).width, 256);
      // The same key without its signature is refused.
      const bare = await fetch(`${url.origin}${url.pathname}`);
      assert.equal(bare.status, 401);
      assert.equal(((await bare.json()) as { error: string }).error, 'IMAGE_SIGNATURE_REQUIRED');

      const out = path.join(dir, 'signed.png');
      const cmd = parseGenerateArgs(
        [
          'a',
          'signed',
          'lighthouse',
          '--width',
          '256',
          '--height',
          '256',
          '--steps',
          '2',
          '--out',
          out,
          '--url',
          signed.address.wsUrl,
          '--key',
          KEY,
        ],
        {},
      ) as GenerateCommand;
      const stderr = captureStream();
      assert.equal(await runGenerate(cmd, stderr), EXIT.OK, stderr.text());
      assert.equal(decodePng(await readFile(out)).width, 256);
    } finally {
      await signed.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test('AtelierClient surfaces rejections and refused keys as typed errors', async () => {
    await assert.rejects(AtelierClient.connect({ url: gw.address.wsUrl, apiKey: 'nope' }), AuthenticationError);
    const client = await AtelierClient.connect({ url: gw.address.wsUrl, apiKey: KEY });
    await assert.rejects(
      client.generate({ prompt: 'x', model: 'nonexistent', tier: 'fast', width: 64, height: 64 }),
      (err: unknown) => err instanceof RequestRejectedError && err.code === 'UNKNOWN_MODEL',
    );
    await client.close();
  });
});
