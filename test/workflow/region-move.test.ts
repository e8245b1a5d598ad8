// A request waiting for a GPU in a region that died moves to another region (issue 12), on a real Temporal dev server
// with the production workers: region A has no H100 worker, region B has one. A turbo request (routed to H100) waits in
// A until the failover coordinator's `moveRegion` signal (workflows/region-move.ts) names B: its unstarted attempt is
// cancelled and rescheduled on B's H100 queue, where it completes once; its client is told it waits in B (degraded),
// and its Region search attribute says B. A move that names another region than the request's is ignored.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { moveRegionSignal } from '../../workflows/region-move';
import { eventually } from '../helpers/eventually';
import {
  createTemporalTestEnv,
  startExtraGpuWorker,
  startGenerationHarness,
  type ExtraGpuWorker,
  type GenerationHarness,
} from '../helpers/temporal';

/** Temporal's PendingActivityState of an activity scheduled and not started, and of one started. */
const SCHEDULED = 1;
const STARTED = 2;

describe('a waiting request moves to another region (issue 12)', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  let regionB: string;
  let workerB: ExtraGpuWorker;

  before(async () => {
    env = await createTemporalTestEnv();
    // A's A10G runs at a speed-up low enough for a move to arrive while its attempt runs (the second test).
    h = await startGenerationHarness(env, { gpus: { a10g: { speedup: 5 } } });
    regionB = `${h.region}-b`;
    workerB = await startExtraGpuWorker(env, h, {
      gpuType: 'h100',
      fleet: {},
      identity: 'region-b-h100',
      region: regionB,
    });
  });
  after(async () => {
    await workerB?.stop();
    await h?.stop();
    await env?.teardown();
  });

  async function gpuAttemptIn(handle: WorkflowHandle, state: number, what: string): Promise<void> {
    await eventually(
      async () =>
        ((await handle.describe()).raw.pendingActivities ?? []).some(
          (a) => a.activityType?.name === 'runInference' && Number(a.state) === state,
        ),
      20_000,
      what,
    );
  }

  test('its unstarted attempt leaves for B and completes there once; the client is told', async () => {
    const req = { ...h.request({ tier: 'turbo', steps: 4 }), gpuStartTimeoutMs: 120_000 };
    const handle = await h.start(req);
    await gpuAttemptIn(handle, SCHEDULED, 'the GPU attempt to be scheduled in region A');
    // Stale: it names a region the request is not in.
    await handle.signal(moveRegionSignal, { from: 'elsewhere', to: 'nowhere', cancelWaiting: true });
    await handle.signal(moveRegionSignal, { from: h.region, to: regionB, cancelWaiting: true });
    const result = await handle.result();
    assert.equal(result.workerId, 'region-b-h100');

    const history = await handle.fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes?.activityType?.name === 'runInference'
        ? [e.activityTaskScheduledEventAttributes.taskQueue?.name]
        : [],
    );
    assert.deepEqual(scheduled, [`${h.region}.gpu-h100`, `${regionB}.gpu-h100`]);
    assert.equal((history.events ?? []).filter((e) => e.activityTaskCanceledEventAttributes).length, 1);

    const events = await h.events(req);
    assert.ok(
      events.some((e) => e.type === 'status' && e.status === 'queued' && e.region === regionB && e.degraded),
      'the client hears it waits in B',
    );
    assert.equal(events.filter((e) => e.type === 'completed' || e.type === 'failed').length, 1);
    assert.deepEqual((await handle.describe()).searchAttributes.Region, [regionB]);
  });

  test('a move without cancelWaiting leaves the running attempt where it is', async () => {
    const req = { ...h.request({ tier: 'fast', steps: 30 }) };
    const handle = await h.start(req);
    // The move must find the attempt running: one that arrives first moves the request before its first attempt.
    await gpuAttemptIn(handle, STARTED, "the GPU attempt to run on region A's A10G");
    await handle.signal(moveRegionSignal, { from: h.region, to: regionB, cancelWaiting: false });
    const result = await handle.result();
    assert.match(result.workerId, /^test:/, "served by region A's own A10G worker: nothing failed, nothing moved");
    const history = await handle.fetchHistory();
    assert.equal((history.events ?? []).filter((e) => e.activityTaskCanceledEventAttributes).length, 0);
  });
});
