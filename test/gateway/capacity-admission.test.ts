// Admission by capacity at a real gateway (real Redis, real Temporal dev server): with the region's queue sample in
// Redis as the control worker writes it, a fleet whose backlog would keep fast requests past their 30 s admission bound
// sheds new fast and relax requests with QUEUE_FULL and a retryAfterMs from its drain rate, while turbo (its own H100
// fleet, no backlog) is admitted; without a sample nothing is shed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gpuTaskQueue } from '../../core/gpu';
import { CapacityStore } from '../../runtime/capacity-store';
import { generateFrame, TestSocket, uniqueRequestId, useGatewayOnTemporal } from './harness';

describe('admission by capacity', () => {
  const fixture = useGatewayOnTemporal();

  test('a saturated fleet sheds relax and fast with QUEUE_FULL; turbo on its own fleet goes on', async () => {
    const socket = await TestSocket.open(fixture.gw.address.wsUrl, 'test-key-alice');
    const answer = async (tier: string) => {
      const requestId = uniqueRequestId(tier);
      socket.send(generateFrame({ requestId, tier }));
      return (await socket.next(
        (f) => f.requestId === requestId && (f.type === 'accepted' || f.type === 'rejected'),
      )) as { type: string; code?: string; retryAfterMs?: number };
    };
    assert.equal((await answer('relax')).type, 'accepted', 'no sample: no capacity check');

    // 600 fast tasks ahead at 2 a second: 5 minutes, past fast's 30 s admission bound by 270 s.
    const store = new CapacityStore(fixture.gw.redis.redis, fixture.gw.redis.prefix);
    await store.publish(gpuTaskQueue('us-west', 'a10g'), {
      at: Date.now(),
      backlogByPriority: { '3': 600 },
      dispatchPerSecond: 2,
    });
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the gateway's one-second cache
    for (const tier of ['fast', 'relax']) {
      const shed = await answer(tier);
      assert.deepEqual([shed.type, shed.code, shed.retryAfterMs], ['rejected', 'QUEUE_FULL', 270_000], tier);
    }
    assert.equal((await answer('turbo')).type, 'accepted');
    await socket.close();
  });
});
