// The gateway's pure pieces, without servers: API-key parsing and matching, option validation, and the generate
// CLI's argument handling and output names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiKeyConfigError, STATIC_KEY_PLAN, StaticApiKeyStore } from '../../gateway/auth';
import { outputPath, parseGenerateArgs, UsageError } from '../../client/generate-cli';
import { progressLine } from '../../client/progress';
import { resolveGatewayOptions } from '../../gateway/options';

void test('static API keys map to their users; unknown, empty-prefix and near-miss keys do not', async () => {
  const store = StaticApiKeyStore.parse('k1:alice, with:colon:bob ,k3:carol');
  assert.equal((await store.authenticate('k1'))?.userId, 'alice');
  assert.equal((await store.authenticate('with:colon'))?.userId, 'bob');
  assert.equal((await store.authenticate('k3'))?.userId, 'carol');
  assert.deepEqual((await store.authenticate('k1'))?.plan, STATIC_KEY_PLAN, 'static keys get the static plan');
  for (const key of ['', 'k', 'k1 ', 'K1', 'k1:alice', 'k2']) assert.equal(await store.authenticate(key), null, key);
});

void test('API key configuration errors are reported, including user ids that could forge workflow ids', () => {
  assert.throws(() => StaticApiKeyStore.parse(''), ApiKeyConfigError);
  assert.throws(() => StaticApiKeyStore.parse('no-user'), ApiKeyConfigError);
  assert.throws(() => StaticApiKeyStore.parse(':alice'), ApiKeyConfigError);
  assert.throws(() => StaticApiKeyStore.parse('key:'), ApiKeyConfigError);
  // `gen:<user>:<requestId>`: a user "a:b" would share workflow ids with user "a".
  assert.throws(() => new StaticApiKeyStore([{ apiKey: 'k', userId: 'a:b' }]), ApiKeyConfigError);
});

void test('gateway options: defaults, public URL derived from host and port, clear errors', () => {
  const o = resolveGatewayOptions({});
  assert.equal(o.port, 8080);
  assert.equal(o.publicBaseUrl, 'http://127.0.0.1:8080');
  assert.equal(o.rateLimitPerMinute, 100, 'seed 003');
  assert.equal(o.apiKeys, 'dev-key:dev');
  assert.equal(
    resolveGatewayOptions({ ATELIER_PUBLIC_URL: 'https://img.example.com/' }).publicBaseUrl,
    'https://img.example.com',
  );
  assert.equal(
    resolveGatewayOptions({ ATELIER_GATEWAY_HOST: '0.0.0.0', ATELIER_GATEWAY_PORT: '9000', ATELIER_API_KEYS: 'k9:me' })
      .publicBaseUrl,
    'http://127.0.0.1:9000',
  );
  assert.throws(
    () => resolveGatewayOptions({ ATELIER_RATE_LIMIT_PER_MINUTE: 'lots' }),
    /ATELIER_RATE_LIMIT_PER_MINUTE/,
  );
  assert.throws(() => resolveGatewayOptions({ ATELIER_PUBLIC_URL: 'img.example.com' }), /ATELIER_PUBLIC_URL/);
});

void test('the CLI turns its arguments into a generate request with model defaults', () => {
  const cmd = parseGenerateArgs(
    ['a', 'lighthouse', 'at', 'dusk', '--tier', 'turbo', '--steps', '20', '--seed', '7', '--num-images', '3'],
    {},
  );
  assert.notEqual(cmd, 'help');
  if (cmd === 'help') return;
  assert.deepEqual(cmd.request, {
    prompt: 'a lighthouse at dusk',
    model: 'sdxl',
    tier: 'turbo',
    width: 1024,
    height: 1024,
    steps: 20,
    seed: 7,
    numImages: 3,
  });
  assert.equal(cmd.out, 'out.png');
  assert.equal(cmd.url, 'ws://127.0.0.1:8080/v1/ws');
  assert.equal(cmd.apiKey, 'dev-key');
  const fromEnv = parseGenerateArgs(['x'], { ATELIER_URL: 'ws://gw:1/v1/ws', ATELIER_API_KEY: 'secret' });
  assert.ok(fromEnv !== 'help' && fromEnv.url === 'ws://gw:1/v1/ws' && fromEnv.apiKey === 'secret');
  assert.equal(parseGenerateArgs(['--help'], {}), 'help');
  const withDeadline = parseGenerateArgs(['x', '--deadline-ms', '30000'], {});
  assert.ok(withDeadline !== 'help');
  assert.equal(withDeadline.request.deadlineMs, 30_000, 'a budget in ms, passed through as deadlineMs');
});

void test('the CLI refuses bad usage with a UsageError', () => {
  for (const argv of [
    [],
    ['x', '--model', 'dalle'],
    ['x', '--tier', 'gold'],
    ['x', '--steps', 'many'],
    ['x', '--bogus'],
    ['x', '--guidance', 'high'],
    ['x', '--deadline-ms', 'soon'],
  ]) {
    assert.throws(() => parseGenerateArgs(argv, {}), UsageError, JSON.stringify(argv));
  }
});

void test('several images are saved as out.png, out-1.png, out-2.png', () => {
  assert.deepEqual(
    [0, 1, 2].map((i) => outputPath('dir/out.png', i)),
    ['dir/out.png', 'dir/out-1.png', 'dir/out-2.png'],
  );
  assert.equal(outputPath('picture', 1), 'picture-1');
});

void test('the progress line shows the estimate, the queue position and a bar proportional to the step', () => {
  assert.equal(
    progressLine({ type: 'progress', requestId: 'r', step: 5, totalSteps: 10, seq: 3 }, 10),
    'generating [#####.....] 5/10',
  );
  assert.equal(
    progressLine({ type: 'failed', requestId: 'r', code: 'CANCELLED', message: 'by client', retryable: false, seq: 9 }),
    'failed CANCELLED: by client',
  );
  const estimate = { gpuType: 'a10g' as const, gpuSeconds: 2.5, costUsd: 0.000694, etaMs: 12_300 };
  assert.equal(
    progressLine({ type: 'accepted', requestId: 'r', workflowId: 'w', estimate, seq: 1 }),
    'accepted  2.5 GPU-s on a10g, $0.000694, done in ~13 s',
  );
  assert.equal(progressLine({ type: 'accepted', requestId: 'r', workflowId: 'w', seq: 1 }), 'accepted  w');
  assert.equal(
    progressLine({ type: 'status', requestId: 'r', status: 'queued', queuePosition: 4, etaMs: 9_000, seq: 2 }),
    'queued    #4, done in ~9 s',
  );
  assert.equal(progressLine({ type: 'status', requestId: 'r', status: 'generating', seq: 3 }), 'generating');
});

void test('the development key is refused beyond loopback; loopback and real keys are fine', () => {
  assert.throws(
    () => resolveGatewayOptions({ ATELIER_GATEWAY_HOST: '0.0.0.0' }),
    /Refusing to serve the development API key/,
  );
  assert.throws(
    () => resolveGatewayOptions({ ATELIER_GATEWAY_HOST: '10.0.0.5', ATELIER_API_KEYS: 'mine:me,dev-key:dev' }),
    /development API key/,
  );
  for (const host of ['127.0.0.1', '127.3.2.1', '::1', 'localhost'])
    assert.equal(resolveGatewayOptions({ ATELIER_GATEWAY_HOST: host }).host, host);
  assert.equal(
    resolveGatewayOptions({ ATELIER_GATEWAY_HOST: '0.0.0.0', ATELIER_API_KEYS: 'k-7f3a:me' }).host,
    '0.0.0.0',
  );
});
