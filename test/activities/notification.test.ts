// The publishEvent activity: events land in the log of the workflow the activity runs for (its id is the
// request's log id), in order, and a dedupe key makes a retried publish a no-op that returns the first seq.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createNotificationActivities } from '../../activities/notification';
import { RedisEventLog } from '../../runtime/event-log';
import { testRedis, type TestRedis } from '../helpers/redis';

describe('publishEvent activity', () => {
  let r: TestRedis;
  let eventLog: RedisEventLog;
  before(async () => {
    r = await testRedis();
    eventLog = new RedisEventLog(r.redis, { prefix: r.prefix });
  });
  after(async () => r.cleanup());

  test("appends to the workflow's log; a repeated dedupe key publishes once", async () => {
    const env = new MockActivityEnvironment(
      { workflowExecution: { workflowId: 'gen:user-1:req-n', runId: 'run-1' }, activityType: 'publishEvent' },
      { logger: new DefaultLogger('ERROR') },
    );
    const { publishEvent } = createNotificationActivities({ eventLog });
    // The gateway begins every log with `accepted` before the workflow starts.
    await eventLog.publish('gen:user-1:req-n', { type: 'accepted', workflowId: 'gen:user-1:req-n' }, 'accepted');
    const queued = {
      requestId: 'req-n',
      event: { type: 'status', status: 'queued' } as const,
      dedupeKey: 'status:queued',
    };
    assert.equal(await env.run(publishEvent, queued), 2);
    assert.equal(await env.run(publishEvent, queued), 2, 'a retry gets the first seq back');
    const terminal = { requestId: 'req-n', event: { type: 'completed', images: [] } as const, dedupeKey: 'terminal' };
    assert.equal(await env.run(publishEvent, terminal), 3);
    const cancelled = { type: 'failed', code: 'CANCELLED', message: 'late cancel', retryable: false } as const;
    assert.equal(
      await env.run(publishEvent, { requestId: 'req-n', event: cancelled, dedupeKey: 'terminal' }),
      3,
      'one terminal event',
    );
    assert.deepEqual(await eventLog.read('gen:user-1:req-n', 0), [
      { type: 'accepted', workflowId: 'gen:user-1:req-n', seq: 1 },
      { type: 'status', status: 'queued', seq: 2 },
      { type: 'completed', images: [], seq: 3 },
    ]);
  });
});
