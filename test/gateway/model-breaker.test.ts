// Seed 001's breakers at the gateway. Per model (5 failures open it for 60 s): while a model's breaker is open, new
// requests for it are refused with MODEL_CIRCUIT_OPEN and retryAfterMs; other models go on, and a request accepted
// before the breaker opened can still be re-attached to. Global (more than 10% of requests failed over 60 s, at least
// 20): relax requests are refused with RELAX_SHED, the other tiers go on. A gateway reads each breaker at most once a
// second. Real Redis, real Temporal dev server.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL_BREAKER } from '../../core/circuit-breaker';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisBreakerStore } from '../../runtime/breaker-store';
import { GlobalFailureRate } from '../../runtime/global-breaker';
import { RELAX_SHED_RETRY_AFTER_MS } from '../../gateway/breaker-gate';

/** A gateway caches each breaker reading this long. */
const BREAKER_CACHE_MS = 1_100;
import { generateFrame, TestSocket, uniqueRequestId, useGatewayOnTemporal } from './harness';

describe('gateway and the circuit breakers', () => {
  const fixture = useGatewayOnTemporal();

  test('an open breaker refuses new requests for its model only, and lets a re-attach through', async () => {
    const socket = await TestSocket.open(fixture.gw.address.wsUrl, 'test-key-alice');
    const earlier = uniqueRequestId('before-open');
    const sd3 = { model: 'sd3', width: 1024, height: 1024 };
    socket.send(generateFrame({ requestId: earlier, ...sd3 }));
    await socket.nextFor(earlier, 'accepted');

    // Five failures of sd3, as GPU workers report them, open its breaker for every gateway.
    const breakers = new RedisBreakerStore(
      fixture.gw.redis.redis,
      `${fixture.gw.redis.prefix}breaker:model:`,
      MODEL_BREAKER,
    );
    for (let i = 0; i < MODEL_BREAKER.failureThreshold; i++) await breakers.record('sd3', false);
    await sleep(BREAKER_CACHE_MS); // the gateway read sd3's breaker a moment ago, when it was closed

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
    const again = await TestSocket.open(fixture.gw.address.wsUrl, 'test-key-alice');
    again.send(generateFrame({ requestId: earlier, ...sd3 }));
    await again.nextFor(earlier, 'accepted');
    await Promise.all([socket.close(), again.close()]);
  });

  test('the global breaker sheds the relax tier only, once more than 10% of at least 20 requests failed', async () => {
    const socket = await TestSocket.open(fixture.gw.address.wsUrl, 'test-key-alice');
    const rate = new GlobalFailureRate(fixture.gw.redis.redis, fixture.gw.redis.prefix);
    for (let i = 0; i < 18; i++) await rate.record(false);
    for (let i = 0; i < 2; i++) await rate.record(true);
    const atThreshold = uniqueRequestId('relax-at-10pct');
    socket.send(generateFrame({ requestId: atThreshold, tier: 'relax' }));
    await socket.nextFor(atThreshold, 'accepted'); // 2 of 20 is 10%: not above it

    await rate.record(true);
    await sleep(BREAKER_CACHE_MS);
    const shed = uniqueRequestId('relax-shed');
    socket.send(generateFrame({ requestId: shed, tier: 'relax' }));
    const rejection = await socket.nextFor(shed, 'rejected');
    assert.equal(rejection.code, 'RELAX_SHED');
    assert.equal(rejection.retryAfterMs, RELAX_SHED_RETRY_AFTER_MS);
    const fast = uniqueRequestId('fast-goes-on');
    socket.send(generateFrame({ requestId: fast, tier: 'fast' }));
    await socket.nextFor(fast, 'accepted');
    await socket.close();
  });
});
