// A GPU worker shut down while it runs a request (a drain past its grace time, a node going away) hands the request
// back at once as a retryable WorkerShutdown failure, and the workflow runs it on another worker of the fleet: the
// request does not wait out the 30 s heartbeat timeout, and it ends completed, once. Real Temporal dev server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  createTemporalTestEnv,
  startExtraGpuWorker,
  startGenerationHarness,
  type GenerationHarness,
} from '../helpers/temporal';

describe('a GPU worker shut down mid-request', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  before(async () => {
    env = await createTemporalTestEnv();
    h = await startGenerationHarness(env, { gpus: {} });
  });
  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  test('hands the request back as WorkerShutdown, and another worker completes it', async () => {
    // Modelled A10G time (speedup 1): 60 steps of SDXL at 512x512 take about 4 s, far more than the 1 s grace.
    const leaving = await startExtraGpuWorker(env, h, {
      gpuType: 'a10g',
      identity: 'gpu-leaving',
      fleet: { speedup: 1 },
    });
    const req = h.request({ width: 512, height: 512, steps: 60 });
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'progress' && e.step >= 2);
    // One worker per task queue per process (the SDK's rule): the other machine joins once this one has left.
    await leaving.stop();
    const staying = await startExtraGpuWorker(env, h, {
      gpuType: 'a10g',
      identity: 'gpu-staying',
      fleet: { speedup: 50 },
    });
    try {
      const result = await handle.result();
      assert.equal(result.gpuType, 'a10g');

      const history = (await handle.fetchHistory()).events ?? [];
      const failures = history.flatMap((e) => {
        const failure = e.activityTaskFailedEventAttributes?.failure;
        return failure ? [failure.applicationFailureInfo?.type ?? failure.cause?.applicationFailureInfo?.type] : [];
      });
      assert.deepEqual(failures, ['WorkerShutdown'], 'handed back, not timed out');
      assert.ok(
        !history.some((e) => e.activityTaskTimedOutEventAttributes),
        'no attempt waited for the heartbeat timeout',
      );
      const identities = history.flatMap((e) => e.activityTaskStartedEventAttributes?.identity ?? []);
      const gpuAttempts = identities.filter((id) => id.startsWith('gpu-'));
      assert.deepEqual(gpuAttempts, ['gpu-leaving', 'gpu-staying'], 'started on one worker, finished on the other');
      const events = await h.events(req);
      assert.deepEqual(
        events.filter((e) => e.type === 'completed' || e.type === 'failed').map((e) => e.type),
        ['completed'],
      );
    } finally {
      await staying.stop();
    }
  });
});
