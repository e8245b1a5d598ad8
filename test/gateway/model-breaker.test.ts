// The per-model circuit breaker at the gateway (seed 001: 5 failures open it for 60 s): while a model's breaker is
// open, new requests for it are refused with MODEL_CIRCUIT_OPEN and retryAfterMs; other models go on, and a request
// accepted before the breaker opened can still be re-attached to. Real Redis, real Temporal dev server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { MODEL_BREAKER } from '../../core/circuit-breaker';
import { RedisBreakerStore } from '../../runtime/breaker-store';
import {
  generateFrame,
  startTemporal,
  startTestGateway,
  TestSocket,
  uniqueRequestId,
  type TestGateway,
} from './harness';

describe('gateway and the per-model circuit breaker', () => {
  let env: TestWorkflowEnvironment;
  let gw: TestGateway;
  before(async () => {
    env = await startTemporal();
    gw = await startTestGateway({}, { temporalClient: env.client });
  });
  after(async () => {
    await gw?.stop();
    await env?.teardown();
  });

  test('an open breaker refuses new requests for its model only, and lets a re-attach through', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, 'test-key-alice');
    const earlier = uniqueRequestId('before-open');
    const sd3 = { model: 'sd3', width: 1024, height: 1024 };
    socket.send(generateFrame({ requestId: earlier, ...sd3 }));
    await socket.nextFor(earlier, 'accepted');

    // Five failures of sd3, as GPU workers report them, open its breaker for every gateway.
    const breakers = new RedisBreakerStore(gw.redis.redis, `${gw.redis.prefix}breaker:model:`, MODEL_BREAKER);
    for (let i = 0; i < MODEL_BREAKER.failureThreshold; i++) await breakers.record('sd3', false);

    const refused = uniqueRequestId('refused');
    socket.send(generateFrame({ requestId: refused, ...sd3 }));
    const rejection = await socket.nextFor(refused, 'rejected');
    assert.equal(rejection.code, 'MODEL_CIRCUIT_OPEN');
    assert.ok(
      rejection.retryAfterMs !== undefined && rejection.retryAfterMs > 0 && rejection.retryAfterMs <= 60_000,
      String(rejection.retryAfterMs),
    );

    const otherModel = uniqueRequestId('other-model');
    socket.send(generateFrame({ requestId: otherModel }));
    await socket.nextFor(otherModel, 'accepted');

    // The client of the earlier request lost its connection and re-sends it: that is a re-attach, not new work.
    const again = await TestSocket.open(gw.address.wsUrl, 'test-key-alice');
    again.send(generateFrame({ requestId: earlier, ...sd3 }));
    await again.nextFor(earlier, 'accepted');
    await Promise.all([socket.close(), again.close()]);
  });
});
