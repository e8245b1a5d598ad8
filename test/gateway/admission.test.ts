// Admission at a real gateway (real Redis, real Temporal dev server, no workers: accepted requests stay in flight),
// one step at a time in its documented order: a tier outside the plan, a re-attach that is never charged, the rate,
// the user's in-flight cap and the deployment's, each refusal with its code and, where waiting helps, retryAfterMs;
// and cancels, with their own budget, answered without Temporal for a request the user never had.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WebSocket } from 'ws';
import {
  generateFrame,
  startTemporal,
  startTestGateway,
  TestSocket,
  uniqueRequestId,
  type TestGateway,
} from './harness';

/** What a generate is answered with first. */
interface Answer {
  readonly type: string;
  readonly code?: string;
  readonly retryAfterMs?: number;
}

describe('admission at the gateway', () => {
  let env: TestWorkflowEnvironment;
  let gw: TestGateway;
  before(async () => {
    env = await startTemporal();
    gw = await startTestGateway(
      {
        staticKeyTiers: ['fast', 'relax'],
        rateLimitPerMinute: 4,
        maxInFlightPerUser: 2,
        maxInFlight: 3,
        cancelLimitPerMinute: 2,
      },
      { temporalClient: env.client },
    );
  });
  after(async () => {
    await gw?.stop();
    await env?.teardown();
  });

  test('plan, re-attach, rate, in-flight caps and cancels, in order', async () => {
    const alice = await TestSocket.open(gw.address.wsUrl, 'test-key-alice');
    const bob = await TestSocket.open(gw.address.wsUrl, 'test-key-bob');
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

  // Last in this file: it throttles this test's own address.
  test('a source address that keeps presenting bad keys is answered 429 with Retry-After', async () => {
    const statusOf = (key: string): Promise<{ status: number; retryAfter?: string }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(gw.address.wsUrl, { headers: { authorization: `Bearer ${key}` } });
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
    for (let i = 0; i < 20; i++) assert.equal((await statusOf(`guess-${i}`)).status, 401);
    const throttled = await statusOf('guess-21');
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.retryAfter) >= 1, JSON.stringify(throttled));
    assert.equal((await statusOf('test-key-alice')).status, 429, 'the throttle comes before the key is looked up');
  });
});
