// Admission at a real gateway (real Redis, real Temporal dev server, no workers: accepted requests stay in flight),
// one step at a time in its documented order: a tier outside the plan, a re-attach that is never charged, the rate,
// the user's in-flight cap and the deployment's, each refusal with its code and, where waiting helps, retryAfterMs;
// and cancels, with their own budget, answered without Temporal for a request the user never had.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { generateFrame, TestSocket, uniqueRequestId, useGatewayOnTemporal } from './harness';

const ADMIN_TOKEN = 'admission-test-admin-token';

/** What a generate is answered with first. */
interface Answer {
  readonly type: string;
  readonly code?: string;
  readonly retryAfterMs?: number;
}

describe('admission at the gateway', () => {
  const fixture = useGatewayOnTemporal({
    staticKeyTiers: ['fast', 'relax'],
    rateLimitPerMinute: 4,
    maxInFlightPerUser: 2,
    maxInFlight: 3,
    cancelLimitPerMinute: 2,
    adminToken: ADMIN_TOKEN,
  });

  test('plan, re-attach, rate, in-flight caps and cancels, in order', async () => {
    const alice = await TestSocket.open(fixture.gw.address.wsUrl, 'test-key-alice');
    const bob = await TestSocket.open(fixture.gw.address.wsUrl, 'test-key-bob');
    const send = async (socket: TestSocket, fields: Record<string, unknown> = {}, requestId = uniqueRequestId('a')) => {
      socket.send(generateFrame({ requestId, ...fields }));
      const answer = (await socket.next(
        (f) => f.requestId === requestId && (f.type === 'accepted' || f.type === 'rejected'),
      )) as Answer;
      return { requestId, answer };
    };

    const turbo = await send(alice, { tier: 'turbo' });
    assert.equal(turbo.answer.code, 'TIER_NOT_ALLOWED', 'turbo is not in the plan (and costs no budget)');
    const first = await send(alice);
    const second = await send(alice);
    assert.equal(first.answer.type, 'accepted');
    assert.equal(second.answer.type, 'accepted');

    const third = await send(alice);
    assert.equal(third.answer.code, 'IN_FLIGHT_LIMIT');
    assert.ok((third.answer.retryAfterMs ?? 0) >= 500, JSON.stringify(third.answer));

    // Re-sending an accepted request re-attaches: free, even with the budget about to run out.
    for (let i = 0; i < 3; i++) assert.equal((await send(alice, {}, first.requestId)).answer.type, 'accepted');
    const fourth = await send(alice);
    assert.equal(fourth.answer.code, 'IN_FLIGHT_LIMIT', 'the 4th new request: still within the rate of 4');
    const fifth = await send(alice);
    assert.equal(fifth.answer.code, 'RATE_LIMITED', 'the 5th new request in a minute');
    assert.ok((fifth.answer.retryAfterMs ?? 0) > 0);

    // Bob's first request is the deployment's third in flight; his second finds it full.
    assert.equal((await send(bob)).answer.type, 'accepted');
    const full = await send(bob);
    assert.equal(full.answer.code, 'OVERLOADED');
    assert.ok((full.answer.retryAfterMs ?? 0) >= 500 && (full.answer.retryAfterMs ?? 0) <= 60_000);

    // Cancels: one for a request Alice never had is refused from Redis; the budget of 2 per minute holds.
    alice.send({ type: 'cancel', requestId: 'never-submitted' });
    assert.equal((await alice.nextFor('never-submitted', 'rejected')).code, 'UNKNOWN_REQUEST');
    alice.send({ type: 'cancel', requestId: first.requestId });
    alice.send({ type: 'cancel', requestId: second.requestId });
    const limited = await alice.nextFor(second.requestId, 'rejected');
    assert.equal(limited.code, 'RATE_LIMITED');
    await Promise.all([alice.close(), bob.close()]);
  });

  test('keys created through the admin API carry their plan; rotation and revocation take effect at once', async () => {
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${fixture.gw.address.httpUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const bad = await admin('POST', '/admin/keys', { userId: 'a:b' });
    assert.deepEqual([bad.status, bad.body.error], [400, 'BAD_REQUEST']);
    const created = await admin('POST', '/admin/keys', { userId: 'erin', plan: { tiers: ['relax'] } });
    assert.equal(created.status, 201);
    const key = String(created.body.key);
    const keyId = String(created.body.keyId);
    assert.match(key, /^atl_/);
    const listed = await admin('GET', '/admin/keys');
    assert.ok(!JSON.stringify(listed.body).includes(key), 'a listing never shows a secret');

    const erin = await TestSocket.open(fixture.gw.address.wsUrl, key);
    const fast = uniqueRequestId('erin');
    erin.send(generateFrame({ requestId: fast, tier: 'fast' }));
    assert.equal((await erin.nextFor(fast, 'rejected')).code, 'TIER_NOT_ALLOWED', "the key's own plan applies");
    await erin.close();

    const rotated = await admin('POST', `/admin/keys/${keyId}/rotate`);
    assert.equal(rotated.status, 200);
    await assert.rejects(TestSocket.open(fixture.gw.address.wsUrl, key), /401/, 'the old secret stops working');
    const renewed = await TestSocket.open(fixture.gw.address.wsUrl, String(rotated.body.key));
    await renewed.close();
    assert.equal((await admin('DELETE', `/admin/keys/${keyId}`)).status, 200);
    await assert.rejects(TestSocket.open(fixture.gw.address.wsUrl, String(rotated.body.key)), /401/, 'revoked');
    assert.equal((await admin('DELETE', `/admin/keys/${keyId}`)).status, 404);
  });

  // Last in this file: it throttles this test's own address.
  test('a source address that keeps presenting bad keys is answered 429 with Retry-After', async () => {
    const statusOf = (key: string): Promise<{ status: number; retryAfter?: string }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(fixture.gw.address.wsUrl, { headers: { authorization: `Bearer ${key}` } });
        ws.once('unexpected-response', (_req, res) => {
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
          res.resume();
        });
        ws.once('open', () => {
          ws.close();
          resolve({ status: 101 });
        });
        ws.once('error', reject);
      });
    // 20 failures a minute are allowed (the test above spent two of them on a rotated and a revoked key).
    const answers: { status: number; retryAfter?: string }[] = [];
    for (let i = 0; i < 21; i++) answers.push(await statusOf(`guess-${i}`));
    const first = answers.findIndex((a) => a.status === 429);
    assert.ok(first >= 18 && first <= 20, `throttled after about 20 failures: ${JSON.stringify(answers)}`);
    assert.ok(answers.slice(0, first).every((a) => a.status === 401));
    const throttled = answers[first] ?? { status: 0 };
    assert.ok(Number(throttled.retryAfter) >= 1, JSON.stringify(throttled));
    assert.equal((await statusOf('test-key-alice')).status, 429, 'the throttle comes before the key is looked up');
  });
});
