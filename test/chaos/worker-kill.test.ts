// Chaos, seed 001 `worker_termination`: SIGKILL the GPU worker while it generates. The worker's heartbeats stop, so
// within the 30 s heartbeat timeout Temporal fails the attempt; the workflow retries it (core/recovery.ts) on a
// worker of the fleet (here the one the stack's supervisor started in the dead one's place). Every accepted request
// must reach its client exactly once, completed: lost = 0, duplicate terminals = 0, and none failed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertEachCompletedOnce,
  benchLoad,
  countOutcomes,
  reportExperiment,
  sendAcceptedBurst,
  useChaosStack,
} from './harness';

/** Seed 001: a dead worker is detected within 30 s, and no request fails. */
const DETECTION_TARGET_MS = 30_000;

describe('worker_termination: SIGKILL a GPU worker mid-inference', () => {
  const chaos = useChaosStack();

  test('every request completes exactly once; the killed request is retried and completes', async () => {
    const { stack, socket } = chaos;
    const ids = await sendAcceptedBurst(socket, 'kill', 4);
    // Mid-inference: a request is generating and has made progress.
    const victim = await socket.waitFor((f) => f.type === 'progress', 60_000);
    const worker = stack.children().find((c) => c.name === 'gpu-worker[a10g]');
    assert.ok(worker?.pid, `the a10g worker runs: ${JSON.stringify(stack.children())}`);
    // bench:load's generator keeps sending while the worker dies and its replacement starts.
    const load = benchLoad(socket, 'kill', 1, 10);
    const killedAt = Date.now();
    stack.killChild('gpu-worker[a10g]', 'SIGKILL');

    const victimDone = await socket.terminal(victim.requestId as string, DETECTION_TARGET_MS + 120_000);
    // Kill -> the request's images delivered: detection (the 30 s heartbeat timeout), the retry's 2 s backoff, and
    // the retried generation itself.
    const recoveryMs = Date.now() - killedAt;
    assert.equal(victimDone.type, 'completed', JSON.stringify(victimDone));
    ids.push(...(await load).accepted);
    await assertEachCompletedOnce(socket, ids);
    assert.ok(
      recoveryMs < DETECTION_TARGET_MS + 30_000,
      `the killed request completed ${recoveryMs} ms after the kill`,
    );
    reportExperiment('worker_termination', { ...countOutcomes((id) => socket.framesFor(id), ids), recoveryMs });
  });
});
