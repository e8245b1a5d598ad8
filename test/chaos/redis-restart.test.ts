// Chaos: crash Redis (SIGKILL: what its append-only file had not synced is lost) while requests are in flight, and
// start it again on the same data. Events published meanwhile are retried by the activities and the workflow, the
// gateway's followers re-read their logs once reconnected, and a log that lost its counter goes on numbering above
// what clients saw. Every accepted request must reach its client exactly once, completed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertEachCompletedOnce,
  countOutcomes,
  outageUnderLoad,
  reportExperiment,
  sendAcceptedBurst,
  useChaosStack,
} from './harness';

describe('Redis crash and restart with requests in flight', () => {
  const chaos = useChaosStack();

  test('no accepted request is lost or answered twice, and new requests work again', async () => {
    const { stack, socket } = chaos;
    // bench:load's generator keeps sending through the crash: refusals (SERVICE_UNAVAILABLE) are allowed, losses not.
    const { ids, recoveryMs } = await outageUnderLoad(socket, 'redis', async () => {
      await stack.crashRedis();
      await new Promise((r) => setTimeout(r, 2000));
      await stack.startRedis();
    });
    const [after] = await sendAcceptedBurst(socket, 'redis-after', 1);
    assert.ok(after);
    await assertEachCompletedOnce(socket, [after]);
    reportExperiment('redis_restart', { ...countOutcomes((id) => socket.framesFor(id), ids), recoveryMs });
  });
});
