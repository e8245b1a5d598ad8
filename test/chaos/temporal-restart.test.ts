// Chaos: stop the Temporal dev server while requests are in flight and start it again on the same SQLite file.
// Every accepted request must still reach its client's terminal event, with nothing lost and nothing doubled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startStack, repoRoot, type StackHandle } from '../../infra/test-stack';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';
import { within } from '../helpers/deadline';

describe('Temporal server restart with requests in flight', () => {
  let stack: StackHandle;
  let socket: TestSocket;

  before(async () => {
    assert.ok(existsSync(path.join(repoRoot(), 'dist', 'gateway', 'main.js')), 'dist/ is built (npm test builds it)');
    // Slow enough (a few seconds per request) that the restart lands while work is queued and running.
    stack = await startStack({ gatewayPort: 0, env: { ATELIER_SIM_SPEEDUP: '2', LOG_LEVEL: 'warn' } } as Parameters<
      typeof startStack
    >[0]);
    socket = await connectTestSocket(stack.gatewayWsUrl, stack.apiKey);
  });

  after(async () => {
    await within('the test socket', 10_000, socket?.close() ?? Promise.resolve());
    await within('the local stack (gateway, workers, Redis, Temporal)', 60_000, stack?.stop() ?? Promise.resolve());
  });

  test('no accepted request is lost', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `restart-${Date.now()}-${i}`);
    ids.forEach((requestId, i) =>
      socket.send({
        type: 'generate',
        requestId,
        prompt: `a quiet harbour, variation ${i}`,
        model: 'sdxl',
        tier: i % 2 ? 'relax' : 'fast',
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
    await socket.waitFor((f) => f.type === 'progress', 60_000);

    await stack.stopTemporal();
    await new Promise((r) => setTimeout(r, 3000));
    await stack.startTemporal();

    for (const id of ids) {
      const done = await socket.terminal(id, 240_000);
      assert.equal(done.type, 'completed', `${id}: ${JSON.stringify(done)}`);
      const terminals = socket.framesFor(id).filter((f) => f.type === 'completed' || f.type === 'failed');
      assert.equal(terminals.length, 1, `${id} has exactly one terminal event`);
    }
  });
});
