// API keys with plans in Redis (runtime/api-key-store.ts): only digests are stored, a key authenticates to its user
// and plan, rotation replaces the secret at once, revocation removes it. Real Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PLAN } from '../../core/plans';
import { RedisApiKeyStore } from '../../runtime/api-key-store';
import { testRedis, type TestRedis } from '../helpers/redis';

describe('RedisApiKeyStore', () => {
  let r: TestRedis;
  before(async () => {
    r = await testRedis();
  });
  after(async () => r.cleanup());

  test('create, authenticate, list, rotate, revoke; Redis holds no secret', async () => {
    const store = new RedisApiKeyStore(r.redis, `${r.prefix}keys-`);
    const plan = { ...DEFAULT_PLAN, tiers: ['turbo' as const], maxInFlight: 3 };
    const created = await store.create('dana', plan);
    assert.deepEqual(await store.authenticate(created.key), { userId: 'dana', plan });
    assert.equal(await store.authenticate(`${created.key}x`), null);

    const everything =
      JSON.stringify(await r.redis.keys(`${r.prefix}keys-*`)) +
      JSON.stringify(await r.redis.hgetall(`${r.prefix}keys-{apikeys}`));
    assert.ok(!everything.includes(created.key), 'only the digest is stored');
    assert.deepEqual(
      (await store.list()).map((k) => [k.keyId, k.userId]),
      [[created.keyId, 'dana']],
    );

    const rotated = await store.rotate(created.keyId);
    assert.ok(rotated && rotated.key !== created.key);
    assert.equal(await store.authenticate(created.key), null, 'the old secret no longer works');
    assert.equal((await store.authenticate(rotated.key))?.userId, 'dana');
    assert.equal(await store.revoke(created.keyId), true);
    assert.equal(await store.authenticate(rotated.key), null);
    assert.equal(await store.revoke(created.keyId), false);
    assert.equal(await store.rotate('nope'), null);
  });
});
