// Chaos, seed 001 `worker_termination`: SIGKILL the GPU worker while it generates. The worker's heartbeats stop, so
// within the 30 s heartbeat timeout Temporal fails the attempt; the workflow retries it (core/recovery.ts) on a
// worker of the fleet (here the one the stack's supervisor started in the dead one's place). Every accepted request
// must reach its client exactly once, completed: lost = 0, duplicate terminals = 0, and none failed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startStack, repoRoot, type StackHandle } from '../../infra/test-stack';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';
import { within } from '../helpers/deadline';

/** Seed 001: a dead worker is detected within 30 s, and no request fails. */
const DETECTION_TARGET_MS = 30_000;

describe('worker_termination: SIGKILL a GPU worker mid-inference', () => {
  let stack: StackHandle;
  let socket: TestSocket;

  before(async () => {
    assert.ok(existsSync(path.join(repoRoot(), 'dist', 'gateway', 'main.js')), 'dist/ is built (npm test builds it)');
    // Slow enough (a few seconds per request) that the kill lands while the worker generates.
    stack = await startStack({ gatewayPort: 0, env: { ATELIER_SIM_SPEEDUP: '2', LOG_LEVEL: 'warn' } } as Parameters<
      typeof startStack
    >[0]);
    socket = await connectTestSocket(stack.gatewayWsUrl, stack.apiKey);
  });

  after(async () => {
    await within('the test socket', 10_000, socket?.close() ?? Promise.resolve());
    await within('the local stack (gateway, workers, Redis, Temporal)', 60_000, stack?.stop() ?? Promise.resolve());
  });

  test('every request completes exactly once; the killed request is retried and completes', async () => {
    const ids = Array.from({ length: 4 }, (_, i) => `kill-${Date.now()}-${i}`);
    ids.forEach((requestId, i) =>
      socket.send({
        type: 'generate',
        requestId,
        prompt: `a lighthouse in a storm, variation ${i}`,
        model: 'sdxl',
        tier: 'fast',
        width: 512,
        height: 512,
        steps: 10,
      }),
    );
    for (const id of ids) {
      const accepted = await socket.waitFor(
        (f) => f.requestId === id && (f.type === 'accepted' || f.type === 'rejected'),
        60_000,
      );
      assert.equal(accepted.type, 'accepted', JSON.stringify(accepted));
    }
    // Mid-inference: a request is generating and has made progress.
    const victim = await socket.waitFor((f) => f.type === 'progress', 60_000);
    const worker = stack.children().find((c) => c.name === 'gpu-worker[a10g]');
    assert.ok(worker?.pid, `the a10g worker runs: ${JSON.stringify(stack.children())}`);
    const killedAt = Date.now();
    stack.killChild('gpu-worker[a10g]', 'SIGKILL');

    const victimId = victim.requestId as string;
    const victimDone = await socket.terminal(victimId, DETECTION_TARGET_MS + 120_000);
    // Kill -> the request's images delivered: detection (the 30 s heartbeat timeout), the retry's 2 s backoff, and
    // the retried generation itself.
    const recoveryMs = Date.now() - killedAt;
    assert.equal(victimDone.type, 'completed', JSON.stringify(victimDone));

    for (const id of ids) {
      const done = await socket.terminal(id, 240_000);
      assert.equal(done.type, 'completed', `${id}: ${JSON.stringify(done)}`);
      const terminals = socket.framesFor(id).filter((f) => f.type === 'completed' || f.type === 'failed');
      assert.equal(terminals.length, 1, `${id} has exactly one terminal event`);
    }
    assert.ok(
      recoveryMs < DETECTION_TARGET_MS + 30_000,
      `the killed request completed ${recoveryMs} ms after the kill`,
    );
    process.stdout.write(
      `${JSON.stringify({ experiment: 'worker_termination', accepted: ids.length, completedOnce: ids.length, lost: 0, duplicates: 0, recoveryMs })}\n`,
    );
  });
});
