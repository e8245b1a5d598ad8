// Honest expectations at a real gateway (real Redis, real Temporal dev server, no workers, so requests wait):
// `accepted` carries the estimate from the fleet's queue sample, a waiting request's client hears its queue position
// and ETA in live `status` frames that repeat the newest seq, those stop once a GPU worker says `generating` (which
// takes the request out of its queue, moving the one behind it up), and a re-attach replays the estimate it was
// accepted with.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { gpuTaskQueue } from '../../core/gpu';
import { generationWorkflowId } from '../../core/request';
import { CapacityStore } from '../../runtime/capacity-store';
import { RedisEventLog } from '../../runtime/event-log';
import { QueueLeavingEventLog, QueuePositions } from '../../runtime/queue-positions';
import { generateFrame, TestSocket, uniqueRequestId, useGatewayOnTemporal, type TestGateway } from './harness';
import type { Frame } from '../helpers/ws-client';

/** The a10g fleet's queue as the control worker samples it: `ahead` fast requests, 2 taken a second. */
function publishSample(gw: TestGateway, ahead: number): Promise<void> {
  return new CapacityStore(gw.redis.redis, gw.redis.prefix).publish(gpuTaskQueue('us-west', 'a10g'), {
    at: Date.now(),
    backlogByPriority: { '3': ahead },
    dispatchPerSecond: 2,
  });
}

const queueUpdate = (requestId: string, position: number) => (f: Frame) =>
  f.requestId === requestId && f.type === 'status' && f.queuePosition === position;

describe('honest expectations', () => {
  const fixture = useGatewayOnTemporal({ queueUpdateIntervalMs: 200 });

  test('accepted carries an estimate; a waiting request hears its place until a GPU takes it', async () => {
    const { gw } = fixture;
    await publishSample(gw, 4);
    const socket = await TestSocket.open(gw.address.wsUrl, 'test-key-alice');
    const [first, second] = [uniqueRequestId('first'), uniqueRequestId('second')];
    socket.send(generateFrame({ requestId: first }));
    const accepted = await socket.nextFor(first, 'accepted');
    // tiny-sd routes to the A10G fleet ($1.00 an hour): 0.15 GPU-seconds, almost all fixed overhead; 4 fast
    // requests ahead at 2 a second make 2 s of waiting.
    assert.deepEqual(accepted.estimate, { gpuType: 'a10g', gpuSeconds: 0.15, costUsd: 0.000042, etaMs: 2_200 });
    socket.send(generateFrame({ requestId: second }));
    await socket.nextFor(second, 'accepted');

    // Live updates: the newest seq (2, the `queued` status) again, the position, and position / drain rate + service.
    const [one, two] = await Promise.all([
      socket.waitFor(queueUpdate(first, 1), 5_000),
      socket.waitFor(queueUpdate(second, 2), 5_000),
    ]);
    assert.deepEqual(one, { type: 'status', requestId: first, status: 'queued', queuePosition: 1, etaMs: 700, seq: 2 });
    assert.deepEqual(two, {
      type: 'status',
      requestId: second,
      status: 'queued',
      queuePosition: 2,
      etaMs: 1_200,
      seq: 2,
    });

    // A GPU worker takes the first request: its `generating`, through the log GPU workers use, leaves the queue.
    const workerLog = new QueueLeavingEventLog(
      new RedisEventLog(gw.redis.redis, { prefix: gw.redis.prefix }),
      new QueuePositions(gw.redis.redis, gw.redis.prefix),
      (err) => assert.fail(String(err)),
    );
    const firstId = generationWorkflowId('alice', first);
    await workerLog.publish(firstId, { type: 'status', status: 'generating', gpuType: 'a10g' }, 'status:generating');
    await socket.waitFor(queueUpdate(second, 1), 5_000);
    await sleep(600); // three more rounds of updates
    const firstFrames = socket.framesFor(first).map((f) => [f.type, f.status, f.queuePosition, f.seq]);
    assert.deepEqual(
      firstFrames.filter((f) => f[0] === 'status'),
      [
        ['status', 'queued', undefined, 2],
        ['status', 'queued', 1, 2],
        ['status', 'generating', undefined, 3],
      ],
      'one update while it waited (nothing changed after), none once it generates',
    );

    // A re-attach replays the estimate the request was accepted with, whatever the queue looks like now.
    await publishSample(gw, 400);
    const again = await TestSocket.open(gw.address.wsUrl, 'test-key-alice');
    again.send(generateFrame({ requestId: first }));
    assert.deepEqual((await again.nextFor(first, 'accepted')).estimate, accepted.estimate);
    await Promise.all([socket.close(), again.close()]);
  });
});
