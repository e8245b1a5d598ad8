// Gateway protocol v1 against a real Temporal dev server and a real Redis: authentication of the upgrade, every
// malformed or invalid input (each answered with its code while the connection keeps working), idempotent starts
// and re-attach, delivery from the event log, cancel, rate limits, sessions, slow clients, and shutdown.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { defaultPayloadConverter } from '@temporalio/common';
import { generationWorkflowId, type GenerationRequest } from '../../core/request';
import { MAX_FRAME_BYTES, type ServerFrame } from '../../core/protocol';
import { RedisEventLog } from '../../runtime/event-log';
import { eventually } from '../helpers/eventually';
import {
  assertConnectionUsable,
  generateFrame,
  startTemporal,
  startTestGateway,
  TestSocket,
  uniqueRequestId,
  type TestGateway,
} from './harness';

const ALICE = 'test-key-alice';
const BOB = 'test-key-bob';

/** Status code of a WebSocket upgrade attempt (101 when admitted), and the body when refused. */
function upgradeAttempt(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url.replace(/^ws/, 'http'), {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** A raw HTTP GET (paths are sent exactly as given; fetch would normalize `..`). */
function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('gateway protocol v1', () => {
  let env: TestWorkflowEnvironment;
  let gw: TestGateway;
  let log: RedisEventLog;

  before(async () => {
    env = await startTemporal();
    gw = await startTestGateway({}, { temporalClient: env.client });
    log = new RedisEventLog(gw.redis.redis, { prefix: gw.redis.prefix });
  });
  after(async () => {
    await gw?.stop();
    await env?.teardown();
  });

  void describe('authentication', () => {
    void test('an upgrade without a key gets HTTP 401 with a JSON reason', async () => {
      const res = await upgradeAttempt(gw.address.wsUrl);
      assert.equal(res.status, 401);
      assert.equal((JSON.parse(res.body) as { error: string }).error, 'UNAUTHORIZED');
    });

    void test('a wrong key gets 401, in the Authorization header and in the api_key query parameter', async () => {
      assert.equal((await upgradeAttempt(gw.address.wsUrl, { Authorization: 'Bearer not-a-key' })).status, 401);
      assert.equal((await upgradeAttempt(`${gw.address.wsUrl}?api_key=not-a-key`)).status, 401);
      assert.equal((await upgradeAttempt(gw.address.wsUrl, { Authorization: `Basic ${ALICE}` })).status, 401);
    });

    void test('a valid key is admitted from the header or the query parameter', async () => {
      assert.equal((await upgradeAttempt(gw.address.wsUrl, { Authorization: `Bearer ${ALICE}` })).status, 101);
      assert.equal((await upgradeAttempt(`${gw.address.wsUrl}?api_key=${ALICE}`)).status, 101);
      const socket = await TestSocket.open(`${gw.address.wsUrl}?api_key=${BOB}`, null);
      await assertConnectionUsable(socket);
      await socket.close();
    });

    void test('upgrades on other paths get 404', async () => {
      const res = await upgradeAttempt(gw.address.httpUrl.replace('http', 'ws') + '/v2/ws', {
        Authorization: `Bearer ${ALICE}`,
      });
      assert.equal(res.status, 404);
    });
  });

  void describe('unreadable frames get an error frame and the connection stays usable', () => {
    let socket: TestSocket;
    before(async () => {
      socket = await TestSocket.open(gw.address.wsUrl, ALICE);
    });
    after(async () => socket.close());

    const cases: { name: string; data: string | Buffer; binary?: boolean; code: string }[] = [
      { name: 'malformed JSON', data: '{"type": "generate",', code: 'BAD_JSON' },
      { name: 'a binary frame', data: Buffer.from(JSON.stringify(generateFrame())), binary: true, code: 'BAD_FRAME' },
      { name: 'a JSON array', data: '[1, 2, 3]', code: 'BAD_FRAME' },
      { name: 'a JSON string', data: '"generate"', code: 'BAD_FRAME' },
      { name: 'JSON null', data: 'null', code: 'BAD_FRAME' },
      { name: 'an object without type', data: '{"prompt": "x"}', code: 'BAD_FRAME' },
      { name: 'a non-string type', data: '{"type": 7}', code: 'BAD_FRAME' },
      { name: 'an unknown type', data: '{"type": "subscribe"}', code: 'UNKNOWN_TYPE' },
      {
        name: 'a frame just over 64 KiB',
        data: JSON.stringify(generateFrame({ prompt: 'x'.repeat(MAX_FRAME_BYTES) })),
        code: 'FRAME_TOO_LARGE',
      },
      { name: 'a 900 KiB frame (below the hard cap)', data: 'y'.repeat(900 * 1024), code: 'FRAME_TOO_LARGE' },
    ];
    for (const c of cases) {
      void test(`${c.name} -> ${c.code}`, async () => {
        socket.sendRaw(c.data, c.binary ?? false);
        const frame = await socket.next((f) => f.type === 'error');
        assert.equal(frame.type, 'error');
        assert.equal((frame as Extract<ServerFrame, { type: 'error' }>).code, c.code);
        await assertConnectionUsable(socket);
      });
    }

    void test('a frame above the 1 MiB hard cap closes only that socket, with 1009', async () => {
      const big = await TestSocket.open(gw.address.wsUrl, ALICE);
      big.sendRaw('z'.repeat(1024 * 1024 + 1));
      const closed = await big.closed;
      assert.equal(closed.code, 1009);
      await assertConnectionUsable(socket);
    });
  });

  void describe('invalid generate frames are rejected with their code and the requestId', () => {
    let socket: TestSocket;
    before(async () => {
      socket = await TestSocket.open(gw.address.wsUrl, ALICE);
    });
    after(async () => socket.close());

    const cases: { name: string; fields: Record<string, unknown>; code: string; detail?: string }[] = [
      { name: 'unknown model', fields: { model: 'dall-e' }, code: 'UNKNOWN_MODEL' },
      { name: 'unknown tier', fields: { tier: 'platinum' }, code: 'UNKNOWN_TIER' },
      { name: 'width above the model maximum', fields: { width: 4096 }, code: 'INVALID_SIZE' },
      { name: 'height below the model minimum', fields: { height: 16 }, code: 'INVALID_SIZE' },
      { name: 'width not a multiple of 8', fields: { width: 60 }, code: 'INVALID_SIZE' },
      { name: 'empty prompt', fields: { prompt: '' }, code: 'INVALID_PROMPT' },
      { name: 'whitespace prompt', fields: { prompt: '   \n ' }, code: 'INVALID_PROMPT' },
      { name: 'prompt over 2000 characters', fields: { prompt: 'p'.repeat(2001) }, code: 'INVALID_PROMPT' },
      { name: 'width of the wrong type', fields: { width: '64' }, code: 'INVALID_REQUEST', detail: 'width' },
      { name: 'missing prompt', fields: { prompt: undefined }, code: 'INVALID_REQUEST', detail: 'prompt' },
      { name: 'steps of the wrong type', fields: { steps: 2.5 }, code: 'INVALID_REQUEST', detail: 'steps' },
      { name: 'too many images', fields: { numImages: 9 }, code: 'INVALID_REQUEST', detail: 'numImages' },
      { name: 'seed out of range', fields: { seed: -1 }, code: 'INVALID_REQUEST', detail: 'seed' },
      { name: 'steps above the model maximum', fields: { steps: 51 }, code: 'INVALID_REQUEST', detail: 'steps' },
      { name: 'deadlineMs under a second', fields: { deadlineMs: 999 }, code: 'INVALID_REQUEST', detail: 'deadlineMs' },
      {
        name: 'deadlineMs as an epoch time, not a budget',
        fields: { deadlineMs: Date.now() + 60_000 },
        code: 'INVALID_REQUEST',
        detail: 'deadlineMs',
      },
      { name: 'deadlineMs a string', fields: { deadlineMs: '5000' }, code: 'INVALID_REQUEST', detail: 'deadlineMs' },
    ];
    for (const c of cases) {
      void test(`${c.name} -> ${c.code}`, async () => {
        const requestId = uniqueRequestId('invalid');
        socket.send(generateFrame({ requestId, ...c.fields }));
        const frame = await socket.nextFor(requestId, 'rejected');
        assert.equal(frame.code, c.code);
        assert.ok(frame.message.length > 0);
        if (c.detail)
          assert.ok(
            frame.details && c.detail in frame.details,
            `details name ${c.detail}: ${JSON.stringify(frame.details)}`,
          );
        await assertConnectionUsable(socket);
      });
    }

    void test('a malformed requestId is rejected as INVALID_REQUEST without echoing it', async () => {
      socket.send(generateFrame({ requestId: 'has spaces in it' }));
      const frame = await socket.next((f) => f.type === 'rejected');
      assert.equal(frame.type === 'rejected' && frame.code, 'INVALID_REQUEST');
      assert.equal(frame.type === 'rejected' && frame.requestId, undefined);
      assert.ok(frame.type === 'rejected' && frame.details && 'requestId' in frame.details);
      await assertConnectionUsable(socket);
    });

    void test('an unknown field is rejected as INVALID_REQUEST', async () => {
      const requestId = uniqueRequestId('extra');
      socket.send(generateFrame({ requestId, sampler: 'euler' }));
      assert.equal((await socket.nextFor(requestId, 'rejected')).code, 'INVALID_REQUEST');
      await assertConnectionUsable(socket);
    });
  });

  void describe('starting requests', () => {
    void test('a generate is accepted with its workflow id after the workflow started, as event seq 1', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      const requestId = uniqueRequestId('accept');
      socket.send(generateFrame({ requestId, tier: 'turbo' }));
      const accepted = await socket.nextFor(requestId, 'accepted');
      assert.equal(accepted.workflowId, generationWorkflowId('alice', requestId));
      assert.equal(accepted.seq, 1);
      const description = await env.client.workflow.getHandle(accepted.workflowId).describe();
      assert.equal(description.status.name, 'RUNNING');
      assert.equal(description.type, 'generateImage');
      await socket.close();
    });

    void test('deadlineMs is accepted and reaches the workflow as an absolute deadline fixed at acceptance', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      const requestId = uniqueRequestId('deadline');
      const sentAt = Date.now();
      socket.send(generateFrame({ requestId, deadlineMs: 45_000 }));
      const accepted = await socket.nextFor(requestId, 'accepted');
      const answeredAt = Date.now();
      const history = await env.client.workflow.getHandle(accepted.workflowId).fetchHistory();
      const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      assert.ok(payload, 'the workflow has an input');
      const input = defaultPayloadConverter.fromPayload<GenerationRequest>(payload);
      assert.equal(input.deadlineAt, input.submittedAt + 45_000, 'the budget counts from acceptance');
      assert.ok(input.submittedAt >= sentAt && input.submittedAt <= answeredAt, 'on the gateway clock');
      await socket.close();
    });

    void test('a generate without requestId gets a fresh one in its accepted frame', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      socket.send(generateFrame());
      const accepted = await socket.next((f) => f.type === 'accepted');
      assert.ok(accepted.type === 'accepted' && accepted.requestId.length > 0);
      assert.equal(
        accepted.type === 'accepted' && accepted.workflowId,
        generationWorkflowId('alice', accepted.type === 'accepted' ? accepted.requestId : ''),
      );
      await socket.close();
    });

    void test('the same requestId sent twice starts one workflow; the second generate re-attaches and replays the log', async () => {
      const requestId = uniqueRequestId('idem');
      const workflowId = generationWorkflowId('alice', requestId);
      const first = await TestSocket.open(gw.address.wsUrl, ALICE);
      first.send(generateFrame({ requestId }));
      assert.equal((await first.nextFor(requestId, 'accepted')).seq, 1);
      await log.publish(workflowId, { type: 'status', status: 'queued' }, 'status:queued');

      // Same requestId from another connection (as after a reconnect) and again on the first one.
      const second = await TestSocket.open(gw.address.wsUrl, ALICE);
      second.send(generateFrame({ requestId }));
      first.send(generateFrame({ requestId }));
      const againAccepted = await second.nextFor(requestId, 'accepted');
      assert.equal(againAccepted.seq, 1);
      assert.equal(againAccepted.workflowId, workflowId);
      assert.equal((await second.nextFor(requestId, 'status')).seq, 2);
      assert.equal((await first.nextFor(requestId, 'accepted')).seq, 1);

      await eventually(
        async () => (await env.client.workflow.count(`WorkflowId = "${workflowId}"`)).count >= 1,
        10_000,
        'visibility',
      );
      assert.equal((await env.client.workflow.count(`WorkflowId = "${workflowId}"`)).count, 1);

      // Once the workflow has closed, the same requestId still re-attaches instead of running the request again.
      await env.client.workflow.getHandle(workflowId).terminate('test: close the workflow');
      const third = await TestSocket.open(gw.address.wsUrl, ALICE);
      third.send(generateFrame({ requestId }));
      assert.equal((await third.nextFor(requestId, 'accepted')).seq, 1);
      assert.equal((await third.nextFor(requestId, 'status')).seq, 2);
      const runs: string[] = [];
      for await (const execution of env.client.workflow.list({ query: `WorkflowId = "${workflowId}"` }))
        runs.push(execution.runId);
      assert.equal(runs.length, 1);
      await Promise.all([first.close(), second.close(), third.close()]);
    });

    void test('the same requestId from two users names two different workflows', async () => {
      const requestId = uniqueRequestId('shared');
      const alice = await TestSocket.open(gw.address.wsUrl, ALICE);
      const bob = await TestSocket.open(gw.address.wsUrl, BOB);
      alice.send(generateFrame({ requestId }));
      bob.send(generateFrame({ requestId }));
      assert.equal((await alice.nextFor(requestId, 'accepted')).workflowId, generationWorkflowId('alice', requestId));
      assert.equal((await bob.nextFor(requestId, 'accepted')).workflowId, generationWorkflowId('bob', requestId));
      await Promise.all([alice.close(), bob.close()]);
    });
  });

  void describe('delivery from the event log', () => {
    void test('events arrive in seq order with image URLs, and nothing after the terminal event', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      const requestId = uniqueRequestId('deliver');
      const workflowId = generationWorkflowId('alice', requestId);
      socket.send(generateFrame({ requestId }));
      await socket.nextFor(requestId, 'accepted');
      await log.publish(workflowId, { type: 'status', status: 'generating', gpuType: 'a10g' });
      for (let step = 1; step <= 4; step++) await log.publish(workflowId, { type: 'progress', step, totalSteps: 4 });
      const key = `images/alice/${requestId}/0-0123456789abcdef.png`;
      await log.publish(
        workflowId,
        { type: 'completed', images: [{ key, width: 64, height: 64, seed: 42 }] },
        'terminal',
      );
      await log.publish(workflowId, { type: 'progress', step: 5, totalSteps: 4 });

      const completed = await socket.nextFor(requestId, 'completed');
      assert.deepEqual(completed.images, [
        { url: `${gw.address.publicBaseUrl}/v1/images/${key}`, width: 64, height: 64, seed: 42 },
      ]);
      await new Promise((r) => setTimeout(r, 200));
      const about = socket.frames.filter((f) => 'requestId' in f && f.requestId === requestId);
      // The gateway records `accepted` and the `queued` status itself, before the workflow starts.
      assert.deepEqual(
        about.map((f) => (f.type === 'status' ? `status:${f.status}` : f.type)),
        ['accepted', 'status:queued', 'status:generating', 'progress', 'progress', 'progress', 'progress', 'completed'],
      );
      assert.deepEqual(
        about.map((f) => ('seq' in f ? f.seq : -1)),
        [1, 2, 3, 4, 5, 6, 7, 8],
      );
      await socket.close();
    });

    void test('a connection never receives events of requests it did not submit, even on another gateway instance', async () => {
      const other = await startTestGateway(
        { redisPrefix: gw.redis.prefix, gatewayId: 'gateway-test-2' },
        { temporalClient: env.client },
      );
      try {
        const here = await TestSocket.open(gw.address.wsUrl, ALICE);
        const there = await TestSocket.open(other.address.wsUrl, ALICE);
        const mine = uniqueRequestId('mine');
        const theirs = uniqueRequestId('theirs');
        here.send(generateFrame({ requestId: mine }));
        there.send(generateFrame({ requestId: theirs }));
        await here.nextFor(mine, 'accepted');
        await there.nextFor(theirs, 'accepted');
        await log.publish(
          generationWorkflowId('alice', theirs),
          { type: 'failed', code: 'INTERNAL', message: 'x', retryable: false },
          'terminal',
        );
        await log.publish(
          generationWorkflowId('alice', mine),
          { type: 'failed', code: 'INTERNAL', message: 'y', retryable: false },
          'terminal',
        );
        assert.equal((await here.nextFor(mine, 'failed')).message, 'y');
        assert.equal((await there.nextFor(theirs, 'failed')).message, 'x');
        await new Promise((r) => setTimeout(r, 200));
        assert.ok(here.frames.every((f) => !('requestId' in f) || f.requestId !== theirs));
        assert.ok(there.frames.every((f) => !('requestId' in f) || f.requestId !== mine));

        // A request started through one instance re-attaches through the other (a client moving after a 1001).
        there.send(generateFrame({ requestId: mine }));
        assert.equal((await there.nextFor(mine, 'accepted')).seq, 1);
        assert.equal((await there.nextFor(mine, 'failed')).message, 'y');
        await Promise.all([here.close(), there.close()]);
      } finally {
        await other.stop();
      }
    });
  });

  void describe('cancel', () => {
    void test('a cancel of an unknown request is rejected with UNKNOWN_REQUEST', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      const requestId = uniqueRequestId('nobody');
      socket.send({ type: 'cancel', requestId });
      const frame = await socket.nextFor(requestId, 'rejected');
      assert.equal(frame.code, 'UNKNOWN_REQUEST');
      await assertConnectionUsable(socket);
      await socket.close();
    });

    void test("a cancel of another user's request is UNKNOWN_REQUEST and leaves it alone", async () => {
      const alice = await TestSocket.open(gw.address.wsUrl, ALICE);
      const bob = await TestSocket.open(gw.address.wsUrl, BOB);
      const requestId = uniqueRequestId('alice-only');
      alice.send(generateFrame({ requestId }));
      const accepted = await alice.nextFor(requestId, 'accepted');
      bob.send({ type: 'cancel', requestId });
      assert.equal((await bob.nextFor(requestId, 'rejected')).code, 'UNKNOWN_REQUEST');
      const history = await env.client.workflow.getHandle(accepted.workflowId).fetchHistory();
      assert.ok(!history.events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes));
      await Promise.all([alice.close(), bob.close()]);
    });

    void test('a cancel of a running request asks its workflow to cancel', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      const requestId = uniqueRequestId('cancel-me');
      socket.send(generateFrame({ requestId }));
      const accepted = await socket.nextFor(requestId, 'accepted');
      socket.send({ type: 'cancel', requestId });
      await eventually(
        async () => {
          const history = await env.client.workflow.getHandle(accepted.workflowId).fetchHistory();
          return history.events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes) ?? false;
        },
        10_000,
        'the cancel request in the workflow history',
      );
      // No answer frame for an accepted cancel: the workflow's terminal event is the answer.
      await assertConnectionUsable(socket);
      assert.ok(!socket.frames.some((f) => f.type === 'rejected' && f.requestId === requestId));
      await socket.close();
    });

    void test('a cancel without a readable requestId is INVALID_REQUEST', async () => {
      const socket = await TestSocket.open(gw.address.wsUrl, ALICE);
      socket.send({ type: 'cancel' });
      const frame = await socket.next((f) => f.type === 'rejected');
      assert.equal(frame.type === 'rejected' && frame.code, 'INVALID_REQUEST');
      await assertConnectionUsable(socket);
      await socket.close();
    });
  });

  void describe('sessions', () => {
    void test('a connection has a session record in Redis while open, removed on close', async () => {
      const pattern = `${gw.redis.prefix}session:*`;
      const before = new Set(await gw.redis.redis.keys(pattern));
      const socket = await TestSocket.open(gw.address.wsUrl, BOB);
      await assertConnectionUsable(socket);
      const added = (await gw.redis.redis.keys(pattern)).filter((k) => !before.has(k));
      assert.equal(added.length, 1);
      const key = added[0] ?? '';
      const record = await gw.redis.redis.hgetall(key);
      assert.equal(record.userId, 'bob');
      assert.equal(record.gatewayId, 'gateway-test');
      assert.ok(Math.abs(Number(record.connectedAt) - Date.now()) < 60_000);
      assert.ok((await gw.redis.redis.ttl(key)) > 0);
      await socket.close();
      await eventually(async () => (await gw.redis.redis.exists(key)) === 0, 5000, 'session removal');
    });
  });

  void describe('HTTP routes', () => {
    void test('GET /v1/images/<key> serves the stored PNG with ETag and immutable caching', async () => {
      const key = 'images/alice/req-1/0-aaaaaaaaaaaaaaaa.png';
      const body = Buffer.from('\x89PNG\r\n\x1a\nnot-really-pixels');
      const info = await gw.objectStore.put(key, body, {}, 'image/png');
      const res = await rawGet(gw.address.httpUrl, `/v1/images/${key}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'image/png');
      assert.equal(res.headers.etag, `"${info.sha256}"`);
      assert.match(res.headers['cache-control'] ?? '', /immutable/);
      assert.deepEqual(res.body, body);

      const cached = await rawGet(gw.address.httpUrl, `/v1/images/${key}`, { 'If-None-Match': `"${info.sha256}"` });
      assert.equal(cached.status, 304);
      assert.equal(cached.body.length, 0);
      const head = await rawGet(gw.address.httpUrl, `/v1/images/${key}`, {}, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(body.length));
    });

    void test('a missing image is 404 JSON; non-public keys are 404 too', async () => {
      const missing = await rawGet(gw.address.httpUrl, '/v1/images/images/alice/nope/0.png');
      assert.equal(missing.status, 404);
      assert.equal((JSON.parse(missing.body.toString()) as { error: string }).error, 'NOT_FOUND');
      await gw.objectStore.put('staging/alice/req-2/0.png', Buffer.from('staged'));
      assert.equal((await rawGet(gw.address.httpUrl, '/v1/images/staging/alice/req-2/0.png')).status, 404);
    });

    void test('path traversal and malformed keys are 400 and never read outside the store', async () => {
      for (const path of [
        '/v1/images/../../etc/passwd',
        '/v1/images/images/../../../etc/passwd',
        '/v1/images/%2e%2e/%2e%2e/etc/passwd',
        '/v1/images/..%2f..%2fetc%2fpasswd',
        '/v1/images/%2Fetc%2Fpasswd',
        '/v1/images/images/a%00b.png',
        '/v1/images/images//x.png',
        '/v1/images/%zz',
        '/v1/images/',
      ]) {
        const res = await rawGet(gw.address.httpUrl, path);
        assert.equal(res.status, 400, path);
        assert.equal((JSON.parse(res.body.toString()) as { error: string }).error, 'BAD_KEY');
      }
    });

    void test('healthz, readyz, other paths and methods', async () => {
      assert.equal((await rawGet(gw.address.httpUrl, '/healthz')).status, 200);
      const ready = await rawGet(gw.address.httpUrl, '/readyz');
      assert.equal(ready.status, 200);
      assert.deepEqual(JSON.parse(ready.body.toString()), {
        ready: true,
        checks: { redis: { ok: true }, temporal: { ok: true } },
      });
      const unknown = await rawGet(gw.address.httpUrl, '/v1/nothing');
      assert.equal(unknown.status, 404);
      assert.equal((JSON.parse(unknown.body.toString()) as { error: string }).error, 'NOT_FOUND');
      assert.equal((await rawGet(gw.address.httpUrl, '/v1/images/images/a.png', {}, 'DELETE')).status, 405);
    });
  });

  void describe('limits', () => {
    let limited: TestGateway;
    before(async () => {
      limited = await startTestGateway(
        { rateLimitPerMinute: 3, maxBufferedBytes: 64 * 1024 },
        { temporalClient: env.client },
      );
    });
    after(async () => limited.stop());

    void test('a user over the per-minute limit gets RATE_LIMITED with retryAfterMs; the connection stays usable', async () => {
      const socket = await TestSocket.open(limited.address.wsUrl, ALICE);
      for (let i = 0; i < 3; i++) {
        const requestId = uniqueRequestId('budget');
        socket.send(generateFrame({ requestId }));
        await socket.nextFor(requestId, 'accepted');
      }
      const requestId = uniqueRequestId('over');
      socket.send(generateFrame({ requestId }));
      const frame = await socket.nextFor(requestId, 'rejected');
      assert.equal(frame.code, 'RATE_LIMITED');
      assert.ok(
        frame.retryAfterMs !== undefined && frame.retryAfterMs > 0 && frame.retryAfterMs <= 60_000,
        String(frame.retryAfterMs),
      );
      // The limit is per user: bob still gets through.
      const bob = await TestSocket.open(limited.address.wsUrl, BOB);
      const bobs = uniqueRequestId('bob');
      bob.send(generateFrame({ requestId: bobs }));
      await bob.nextFor(bobs, 'accepted');
      await assertConnectionUsable(socket);
      await Promise.all([socket.close(), bob.close()]);
    });

    void test('a client that stops reading is disconnected instead of buffering without bound', async () => {
      const slow = await TestSocket.open(limited.address.wsUrl, BOB);
      const requestId = `${uniqueRequestId('slow')}-${'r'.repeat(80)}`;
      slow.send(generateFrame({ requestId }));
      await slow.nextFor(requestId, 'accepted');
      const countBefore = limited.gateway.connectionCount;
      slow.ws.pause();
      const slowLog = new RedisEventLog(limited.redis.redis, { prefix: limited.redis.prefix, maxProgressEvents: 100 });
      const workflowId = generationWorkflowId('bob', requestId);
      // Loopback TCP buffers absorb about 4 MB before anything stays queued in the gateway; ~200-byte frames, up
      // to 24 MB of them, stopping as soon as the gateway lets go.
      for (let batch = 0; batch < 120 && limited.gateway.connectionCount >= countBefore; batch++) {
        await Promise.all(
          Array.from({ length: 1000 }, (_, i) =>
            slowLog.publish(workflowId, { type: 'progress', step: batch * 1000 + i + 1, totalSteps: 1_000_000 }),
          ),
        );
      }
      await eventually(() => limited.gateway.connectionCount < countBefore, 10_000, 'the slow client to be dropped');
      slow.ws.terminate();
      const fine = await TestSocket.open(limited.address.wsUrl, BOB);
      await assertConnectionUsable(fine);
      await fine.close();
    });
  });

  void describe('heartbeats', () => {
    let hb: TestGateway;
    before(async () => {
      hb = await startTestGateway({ heartbeatIntervalMs: 300 }, { temporalClient: env.client });
    });
    after(async () => hb.stop());

    const sessionKeyOf = async (userId: string): Promise<string | undefined> => {
      for (const key of await hb.redis.redis.keys(`${hb.redis.prefix}session:*`)) {
        if ((await hb.redis.redis.hget(key, 'userId')) === userId) return key;
      }
      return undefined;
    };

    void test('pongs keep a session alive; a peer that stops answering pings is dropped and its session removed', async () => {
      const live = await TestSocket.open(hb.address.wsUrl, ALICE);
      const silent = await TestSocket.open(hb.address.wsUrl, BOB);
      await eventually(
        async () => (await sessionKeyOf('alice')) !== undefined && (await sessionKeyOf('bob')) !== undefined,
        5000,
        'sessions',
      );
      const liveKey = await sessionKeyOf('alice');
      silent.ws.pause(); // reads nothing, so answers no ping
      // The session TTL is three intervals (about 1 s here); only pongs keep it from expiring.
      await new Promise((r) => setTimeout(r, 2500));
      await eventually(() => hb.gateway.connectionCount === 1, 5000, 'the silent peer to be dropped');
      await eventually(
        async () => (await sessionKeyOf('bob')) === undefined,
        5000,
        "the silent peer's session removal",
      );
      assert.equal(await sessionKeyOf('alice'), liveKey);
      assert.ok((await hb.redis.redis.ttl(liveKey ?? '')) > 0);
      await assertConnectionUsable(live);
      silent.ws.terminate();
      await live.close();
    });
  });

  void describe('shutdown', () => {
    void test('clients are told 1001 "reconnect", new connections are refused, requests keep running', async () => {
      const doomed = await startTestGateway({}, { temporalClient: env.client });
      const socket = await TestSocket.open(doomed.address.wsUrl, ALICE);
      const requestId = uniqueRequestId('survivor');
      socket.send(generateFrame({ requestId }));
      const accepted = await socket.nextFor(requestId, 'accepted');
      const sessionKeys = await doomed.redis.redis.keys(`${doomed.redis.prefix}session:*`);
      assert.equal(sessionKeys.length, 1);

      await doomed.gateway.close();
      const closed = await socket.closed;
      assert.equal(closed.code, 1001);
      assert.match(closed.reason, /reconnect/);
      await assert.rejects(TestSocket.open(doomed.address.wsUrl, ALICE));
      assert.equal((await env.client.workflow.getHandle(accepted.workflowId).describe()).status.name, 'RUNNING');
      assert.equal(await doomed.redis.redis.exists(...sessionKeys), 0);
      await doomed.stop();
    });
  });
});
