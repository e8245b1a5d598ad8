// A Redis that hangs (the process stopped with SIGSTOP: connections stay open, nothing answers) must not leave
// clients unanswered: every Redis command has a deadline, a `generate` is answered SERVICE_UNAVAILABLE, and the
// rate limit falls back to its in-memory stand-in with the same budget. Uses a private redis-server of its own.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../../infra/ports';
import { startEphemeralRedis, type EphemeralRedis } from '../../infra/redis-server';
import { RedisRequestRateLimiter } from '../../gateway/rate-limit';
import { createRedis, type RedisClient } from '../../runtime/redis';
import { generateFrame, startTestGateway, TestSocket, uniqueRequestId, type TestGateway } from './harness';

const COMMAND_TIMEOUT_MS = 300;

void describe('while Redis hangs', () => {
  let server: EphemeralRedis;
  let gw: TestGateway;
  let limiterRedis: RedisClient;
  let stopped = false;
  const pid = (): number => {
    const id = server.process?.process.pid;
    assert.ok(id !== undefined, 'the test started its own redis-server');
    return id;
  };
  const hang = (): void => {
    process.kill(pid(), 'SIGSTOP');
    stopped = true;
  };
  const resume = (): void => {
    if (stopped) process.kill(pid(), 'SIGCONT');
    stopped = false;
  };

  before(async () => {
    server = await startEphemeralRedis();
    // Temporal is never reached: every generate here stops at Redis.
    gw = await startTestGateway({
      redisUrl: server.url,
      redisCommandTimeoutMs: COMMAND_TIMEOUT_MS,
      temporalAddress: `127.0.0.1:${await freePort()}`,
    });
    limiterRedis = createRedis(server.url, 'rate-limit-test', COMMAND_TIMEOUT_MS);
  });
  after(async () => {
    resume();
    limiterRedis?.disconnect();
    await gw?.stop();
    await server?.stop();
  });

  void test('a generate is answered SERVICE_UNAVAILABLE instead of waiting for Redis', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, 'test-key-alice');
    hang();
    try {
      const requestId = uniqueRequestId('hung');
      socket.send(generateFrame({ requestId }));
      // Two commands at most stand between the frame and the answer (rate limit, accepted), each bounded.
      const answer = await socket.nextFor(requestId, 'rejected', 10 * COMMAND_TIMEOUT_MS);
      assert.equal(answer.code, 'SERVICE_UNAVAILABLE');
    } finally {
      resume();
      await socket.close();
    }
  });

  void test('the rate limit falls back to memory with the same budget', async () => {
    await limiterRedis.ping();
    const limiter = new RedisRequestRateLimiter(limiterRedis, 'hang-test:', 2);
    hang();
    try {
      assert.deepEqual(await limiter.consume('carol'), { allowed: true });
      assert.deepEqual(await limiter.consume('carol'), { allowed: true });
      const third = await limiter.consume('carol');
      assert.equal(third.allowed, false, 'the in-memory stand-in keeps the limit');
    } finally {
      resume();
    }
  });
});
