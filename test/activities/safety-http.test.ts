// The safety screen over HTTP: the safety service (workers/safety-service.ts) answers the rules-v1 verdicts and refuses
// bad input with its documented codes; HttpPromptScreen turns every way the service can fail (gone, hung, a wrong
// answer) into a throw, which the workflow turns into pending_safety, and its circuit breaker stops calling a service
// that keeps failing, then lets it prove itself again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  HttpPromptScreen,
  SAFETY_BREAKER,
  SAFETY_SCREEN_OPTIONS,
  SafetyServiceUnavailableError,
  createPromptScreen,
} from '../../activities/safety-http';
import { RulesPromptScreen } from '../../activities/safety';
import { resolveOptions } from '../../runtime/options';
import { createSafetyServer } from '../../workers/safety-service';
import { closeServer } from '../../workers/health-server';

const quiet = { warn: () => undefined, info: () => undefined };

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('safety service', () => {
  const server = createSafetyServer(new RulesPromptScreen(), quiet);
  let url = '';
  before(async () => {
    url = await listen(server);
  });
  after(() => closeServer(server));

  const post = (body: string, type = 'application/json') =>
    fetch(`${url}/v1/screen`, { method: 'POST', headers: { 'content-type': type }, body });

  test('answers the rules-v1 verdict: allowed, and refused with its categories', async () => {
    const ok = await post(JSON.stringify({ prompt: 'a lighthouse at dusk' }));
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { allowed: true, categories: [], screen: 'rules-v1' });
    const refused = await post(JSON.stringify({ prompt: 'a decapitated soldier, gore' }));
    assert.equal(refused.status, 200);
    assert.deepEqual(await refused.json(), { allowed: false, categories: ['graphic-violence'], screen: 'rules-v1' });
  });

  const postChunked = (body: string) => {
    const bytes = new TextEncoder().encode(body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.subarray(i, i + 8192));
        controller.close();
      },
    });
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' };
    return fetch(`${url}/v1/screen`, init as RequestInit);
  };

  test('refuses bad input with its documented codes', async () => {
    const cases: [Promise<Response>, number, string][] = [
      [post('{"prompt": '), 400, 'BAD_JSON'],
      [post(JSON.stringify({ prompt: '' })), 400, 'INVALID_REQUEST'],
      [post(JSON.stringify({ prompt: 'x'.repeat(2001) })), 400, 'INVALID_REQUEST'],
      [post(JSON.stringify({ text: 'a cat' })), 400, 'INVALID_REQUEST'],
      [post(JSON.stringify({ prompt: 'x'.repeat(70_000) })), 413, 'BODY_TOO_LARGE'],
      // Chunked, so no Content-Length announces the size: refused once it grows past the limit.
      [postChunked(JSON.stringify({ prompt: 'x'.repeat(70_000) })), 413, 'BODY_TOO_LARGE'],
      [post('prompt=a cat', 'application/x-www-form-urlencoded'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [fetch(`${url}/v1/screen`), 405, 'METHOD_NOT_ALLOWED'],
      [fetch(`${url}/v2/screen`), 404, 'NOT_FOUND'],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      const body = (await res.json()) as { error: string; message: string; details?: Record<string, string> };
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(body.error, code);
      assert.ok(body.message.length > 0);
      if (code === 'INVALID_REQUEST') assert.ok(body.details && Object.keys(body.details).length > 0);
    }
  });

  test('GET /healthz names the screen', async () => {
    const res = await fetch(`${url}/healthz`);
    assert.deepEqual(await res.json(), { ok: true, screen: 'rules-v1' });
  });
});

describe('HttpPromptScreen', () => {
  test('returns the service verdict, a refusal included', async () => {
    const server = createSafetyServer(new RulesPromptScreen(), quiet);
    const screen = new HttpPromptScreen({ url: await listen(server), timeoutMs: 2_000 });
    try {
      assert.deepEqual(await screen.screen('a red bicycle'), { allowed: true, categories: [] });
      assert.deepEqual(await screen.screen('explicit porn'), { allowed: false, categories: ['sexual-explicit'] });
      assert.equal(screen.breaker, 'CLOSED');
    } finally {
      await closeServer(server);
    }
  });

  test('throws when the service is unreachable, hung, or answers without a verdict', async () => {
    const gone = new HttpPromptScreen({ url: 'http://127.0.0.1:1', timeoutMs: 1_000 });
    await assert.rejects(gone.screen('a cat'), (err: unknown) => {
      assert.ok(err instanceof SafetyServiceUnavailableError);
      assert.match(err.message, /unreachable/);
      return true;
    });
    // Accepts the connection and never answers: a hung (or SIGSTOPped) service.
    const hung = createServer(() => undefined);
    const hungScreen = new HttpPromptScreen({ url: await listen(hung), timeoutMs: 300 });
    const started = Date.now();
    await assert.rejects(hungScreen.screen('a cat'), /did not answer within 300 ms/);
    assert.ok(Date.now() - started < 2_000, 'the timeout bounds the call');
    await closeServer(hung);
    const answers: [number, string, RegExp][] = [
      [503, '{"error":"down"}', /HTTP 503/],
      [200, 'not json', /not JSON/],
      [200, '{"allowed":"yes"}', /without a verdict/],
    ];
    for (const [status, body, message] of answers) {
      const wrong = createServer((_req, res) => res.writeHead(status).end(body));
      const screen = new HttpPromptScreen({ url: await listen(wrong), timeoutMs: 1_000 });
      await assert.rejects(screen.screen('a cat'), message);
      await closeServer(wrong);
    }
  });

  test('the breaker opens after repeated failures, fails at once while open, and closes once the service answers', async () => {
    let calls = 0;
    let up = false;
    const service = createSafetyServer(new RulesPromptScreen(), quiet);
    const flaky = createServer((req, res) => {
      calls++;
      if (up) service.emit('request', req, res);
      else res.writeHead(503).end('{"error":"down"}');
    });
    let now = 1_000_000;
    const screen = new HttpPromptScreen({ url: await listen(flaky), timeoutMs: 1_000, log: quiet, now: () => now });
    try {
      for (let i = 0; i < SAFETY_BREAKER.failureThreshold; i++) await assert.rejects(screen.screen('a cat'));
      assert.equal(screen.breaker, 'OPEN');
      await assert.rejects(screen.screen('a cat'), /circuit breaker is open/);
      assert.equal(calls, SAFETY_BREAKER.failureThreshold, 'an open breaker does not call the service');

      up = true;
      now += SAFETY_BREAKER.openMs;
      assert.equal(screen.breaker, 'HALF_OPEN');
      for (let i = 0; i < SAFETY_BREAKER.successThreshold; i++)
        assert.equal((await screen.screen('a cat')).allowed, true);
      assert.equal(screen.breaker, 'CLOSED');
    } finally {
      await closeServer(flaky);
    }
  });
});

describe('ATELIER_SAFETY_URL', () => {
  test('empty keeps the in-process rules-v1 screen; a URL selects the safety service', () => {
    const none = resolveOptions(SAFETY_SCREEN_OPTIONS, {});
    assert.deepEqual(none, { safetyUrl: '', safetyTimeoutMs: 2_000 });
    assert.ok(createPromptScreen(none) instanceof RulesPromptScreen);
    const remote = resolveOptions(SAFETY_SCREEN_OPTIONS, { ATELIER_SAFETY_URL: 'http://127.0.0.1:8090/' });
    assert.equal(remote.safetyUrl, 'http://127.0.0.1:8090');
    assert.ok(createPromptScreen(remote) instanceof HttpPromptScreen);
  });

  test('a value that is not an http(s) URL is refused, naming the variable', () => {
    for (const bad of ['127.0.0.1:8090', 'ftp://safety', 'not a url']) {
      assert.throws(
        () => resolveOptions(SAFETY_SCREEN_OPTIONS, { ATELIER_SAFETY_URL: bad }),
        (err: unknown) => err instanceof TypeError && err.message.startsWith('ATELIER_SAFETY_URL='),
      );
    }
    assert.throws(
      () => resolveOptions(SAFETY_SCREEN_OPTIONS, { ATELIER_SAFETY_TIMEOUT_MS: '20000' }),
      /ATELIER_SAFETY_TIMEOUT_MS/,
    );
  });
});
