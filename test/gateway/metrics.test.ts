// The gateway's /metrics with real workers on a real Temporal dev server and Redis: open connections, a completed
// request's end-to-end latency and queue wait (and not a re-attach's), and refused frames by code.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { eventually } from '../helpers/eventually';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';
import { TestSocket, startTestGateway, uniqueRequestId, type TestGateway } from './harness';

const KEY = 'test-key-alice';

/** The value of the sample of `name` whose labels include all of `labels`; undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`))) return Number(match[3]);
  }
  return undefined;
}

void describe('gateway /metrics', () => {
  let env: TestWorkflowEnvironment;
  let harness: GenerationHarness;
  let gw: TestGateway;
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${gw.address.httpUrl}/metrics`);
    assert.equal(res.status, 200);
    return res.text();
  };

  before(async () => {
    env = await createTemporalTestEnv();
    harness = await startGenerationHarness(env, { gpus: { a10g: { speedup: 1000 } } });
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

  void test('answers in the Prometheus text format, labelled with the process and the region', async () => {
    const res = await fetch(`${gw.address.httpUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    assert.equal(sample(text, 'atelier_ws_connections', { process: 'gateway', region: harness.region }), 0);
    assert.ok(sample(text, 'atelier_event_loop_lag_seconds') !== undefined);
    assert.equal((await fetch(`${gw.address.httpUrl}/metrics`, { method: 'POST' })).status, 405);
  });

  void test('a completed request is timed end to end and in the queue; a re-attach to it is not', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, KEY);
    const other = await TestSocket.open(gw.address.wsUrl, KEY);
    try {
      assert.equal(sample(await scrape(), 'atelier_ws_connections'), 2);
      const requestId = uniqueRequestId('metrics');
      const frame = { type: 'generate', requestId, prompt: 'a lighthouse', model: 'sdxl', tier: 'fast' };
      socket.send({ ...frame, width: 512, height: 512, steps: 4 });
      const done = await socket.terminal(requestId, 60_000);
      assert.equal(done.type, 'completed', JSON.stringify(done));
      const generating = socket.framesFor(requestId).find((f) => f.type === 'status' && f.status === 'generating');
      assert.ok(generating, 'the generating status was delivered');

      // The same requestId again, on another connection: a re-attach that replays the log.
      other.send({ ...frame, width: 512, height: 512, steps: 4 });
      assert.equal((await other.terminal(requestId, 30_000)).type, 'completed');

      const text = await scrape();
      const completed = { tier: 'fast', model: 'sdxl', outcome: 'completed' };
      assert.equal(sample(text, 'atelier_request_e2e_seconds_count', completed), 1, 'only the submitted request');
      const e2e = sample(text, 'atelier_request_e2e_seconds_sum', completed) ?? 0;
      assert.ok(e2e > 0 && e2e < 60, `end to end ${e2e} s`);
      assert.equal(sample(text, 'atelier_request_e2e_seconds_bucket', { ...completed, le: '+Inf' }), 1);
      const waited = { tier: 'fast', gpu_type: 'a10g' };
      assert.equal(sample(text, 'atelier_request_queue_wait_seconds_count', waited), 1);
      const wait = sample(text, 'atelier_request_queue_wait_seconds_sum', waited) ?? -1;
      assert.ok(wait >= 0 && wait <= e2e, `queue wait ${wait} s within the ${e2e} s end to end`);
    } finally {
      await other.close();
      await socket.close();
    }
    await eventually(
      async () => sample(await scrape(), 'atelier_ws_connections') === 0,
      10_000,
      'closed connections to leave the gauge',
    );
  });

  void test('every rejected frame and every unreadable frame is counted by its code', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, KEY);
    try {
      const before = await scrape();
      const requestId = uniqueRequestId('bad-model');
      socket.send({ type: 'generate', requestId, prompt: 'x', model: 'nope', tier: 'fast', width: 512, height: 512 });
      assert.equal((await socket.nextFor(requestId, 'rejected')).code, 'UNKNOWN_MODEL');
      const unknown = uniqueRequestId('unknown');
      socket.send({ type: 'cancel', requestId: unknown });
      assert.equal((await socket.nextFor(unknown, 'rejected')).code, 'UNKNOWN_REQUEST');
      socket.sendRaw('{not json');
      assert.equal((await socket.next((f) => f.type === 'error')).code, 'BAD_JSON');

      const after = await scrape();
      for (const code of ['UNKNOWN_MODEL', 'UNKNOWN_REQUEST', 'BAD_JSON']) {
        const grew =
          (sample(after, 'atelier_rejections_total', { code }) ?? 0) -
          (sample(before, 'atelier_rejections_total', { code }) ?? 0);
        assert.equal(grew, 1, code);
      }
      assert.equal(sample(after, 'atelier_rejections_total', { code: 'RATE_LIMITED' }), 0, 'codes start at 0');
    } finally {
      await socket.close();
    }
  });
});
