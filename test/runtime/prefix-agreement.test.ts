// The Redis prefix check on a real Redis: a gateway and a control worker that disagree on ATELIER_REDIS_PREFIX are
// told so, with both prefixes named; agreeing ones are not; a process whose peers have not started yet waits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, type Logger } from '../../runtime/logger';
import { PREFIX_REGISTRY_KEY, PrefixAgreement, roleKey } from '../../runtime/prefix-agreement';
import { testRedis, type TestRedis } from '../helpers/redis';

/** A logger that records its error lines. */
function recordingLogger(): { log: Logger; errors: string[] } {
  const errors: string[] = [];
  const base = createLogger('prefix-test').child({}, { level: 'silent' });
  const log = Object.assign(Object.create(base) as Logger, {
    error: (_obj: unknown, msg: string) => void errors.push(msg),
  });
  return { log, errors };
}

describe('PrefixAgreement', () => {
  let r: TestRedis;

  before(async () => {
    r = await testRedis();
  });
  after(async () => {
    await r.redis.zrem(PREFIX_REGISTRY_KEY, `${r.prefix}a:`, `${r.prefix}b:`, `${r.prefix}c:`);
    await r.cleanup();
  });

  test('a gateway alone waits for its control worker, and is not in error', async () => {
    const { log, errors } = recordingLogger();
    const gateway = new PrefixAgreement({ redis: r.redis, prefix: `${r.prefix}c:`, role: 'gateway', log });
    assert.equal((await gateway.check()).state, 'waiting');
    assert.equal(
      await r.redis.exists(roleKey(`${r.prefix}c:`, 'gateway')),
      1,
      'the gateway announced itself under its prefix',
    );
    assert.deepEqual(errors, []);
    // Gone, as if it had stopped long ago, so that the next test sees only its own processes.
    await r.redis.del(roleKey(`${r.prefix}c:`, 'gateway'));
  });

  test('a gateway whose control worker uses another prefix reports both prefixes, and recovers once they agree', async () => {
    const a = `${r.prefix}a:`;
    const b = `${r.prefix}b:`;
    const gatewayLog = recordingLogger();
    const workerLog = recordingLogger();
    const gateway = new PrefixAgreement({ redis: r.redis, prefix: a, role: 'gateway', log: gatewayLog.log });
    const worker = new PrefixAgreement({ redis: r.redis, prefix: b, role: 'control-worker', log: workerLog.log });
    await worker.check();
    const status = await gateway.check();
    assert.equal(status.state, 'mismatch');
    const problem = status.state === 'mismatch' ? status.problem : '';
    assert.ok(problem.includes(JSON.stringify(a)) && problem.includes(JSON.stringify(b)), problem);
    assert.equal(gatewayLog.errors.length, 1, 'the mismatch is logged as an error');
    assert.match(gatewayLog.errors[0] ?? '', /Redis prefix mismatch: this gateway uses ATELIER_REDIS_PREFIX=/);

    // The worker sees the same disagreement from its end: its gateway runs under another prefix.
    assert.equal((await worker.check()).state, 'mismatch');
    assert.equal(workerLog.errors.length, 1);

    await gateway.check();
    assert.equal(gatewayLog.errors.length, 1, 'a check that finds the same problem does not log it again');

    const fixedWorker = new PrefixAgreement({ redis: r.redis, prefix: a, role: 'control-worker', log: workerLog.log });
    await fixedWorker.check();
    assert.equal((await gateway.check()).state, 'agreed');
  });
});
