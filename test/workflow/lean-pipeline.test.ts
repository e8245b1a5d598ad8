// The lean pipeline on a real Temporal dev server with the production workers: statuses published by the activities
// that do the work arrive in order with exactly one terminal, a happy-path request stays within its budget of
// history events and round trips, and a cancel in each phase (parked in pending_safety, waiting for a GPU, while
// generating, while uploading) still ends with exactly one terminal event.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { RulesPromptScreen, type PromptScreen } from '../../activities/safety';
import type { SequencedEvent } from '../../core/events';
import { GenerationStatusKey, GpuTypeKey } from '../../core/search-attributes';
import { LEAN_PIPELINE_PATCH, statusQuery, type GenerationResult } from '../../workflows/generate-image';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

/** Event types of a log, statuses spelled `status:<status>`, runs of progress collapsed. */
function timeline(events: readonly SequencedEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const label = e.type === 'status' ? `status:${e.status}` : e.type;
    if (label !== 'progress' || out.at(-1) !== 'progress') out.push(label);
  }
  return out;
}

function terminals(events: readonly SequencedEvent[]): SequencedEvent[] {
  return events.filter((e) => e.type === 'completed' || e.type === 'failed');
}

async function expectCancelled(handle: WorkflowHandle): Promise<void> {
  const err = await handle.result().then(
    () => assert.fail('the workflow completed, but it was cancelled'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
}

/** A gate that a wrapped activity waits on, with a signal of when the activity reached it. */
function gate(): { reached: Promise<void>; wait: () => Promise<void>; open: () => void } {
  let reach!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  const opened = new Promise<void>((r) => (open = r));
  return { reached, open, wait: () => (reach(), opened) };
}

describe('lean pipeline', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  let screenDown = false;
  const uploadGates = new Map<string, ReturnType<typeof gate>>();
  const unpublishedTerminals = new Set<string>();

  /** rules-v1 behind a switch: while `screenDown`, the screen cannot answer (a Safety API outage). */
  const switchableScreen: PromptScreen = {
    name: 'rules-v1',
    screen(prompt) {
      if (screenDown) return Promise.reject(new Error('Safety service unavailable (injected outage)'));
      return new RulesPromptScreen().screen(prompt);
    },
  };

  before(async () => {
    env = await createTemporalTestEnv();
    h = await startGenerationHarness(env, {
      screen: switchableScreen,
      // No h100 worker: a turbo request waits in its queue, as it would for a fleet with no free GPU.
      gpus: { a10g: { speedup: 1000 }, a100: { speedup: 1 } },
      wrapControl: (activities) => ({
        ...activities,
        async storeImages(input) {
          await uploadGates.get(input.requestId)?.wait();
          const stored = await activities.storeImages(input);
          return unpublishedTerminals.has(input.requestId) ? { ...stored, terminalPublished: false } : stored;
        },
      }),
    });
  });

  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  test('the activities publish the statuses in order, one terminal, within 25 history events and 2 activity round trips', async () => {
    const req = h.request({ width: 512, height: 512, steps: 6 });
    const handle = await h.start(req);
    const result: GenerationResult = await handle.result();

    const events = await h.events(req);
    assert.deepEqual(timeline(events), [
      'accepted',
      'status:queued',
      'status:safety_check',
      'status:generating',
      'progress',
      'status:uploading',
      'completed',
    ]);
    assert.equal(events[0]?.seq, 1);
    assert.ok(
      events.every((e, i) => i === 0 || e.seq > (events[i - 1]?.seq ?? 0)),
      'seq only grows',
    );
    const [terminal] = terminals(events);
    assert.deepEqual(terminal?.type === 'completed' ? terminal.images : undefined, result.images);

    const history = (await handle.fetchHistory()).events ?? [];
    assert.ok(history.length <= 25, `${history.length} history events`);
    const count = (has: (e: (typeof history)[number]) => unknown): number => history.filter((e) => has(e)).length;
    assert.equal(
      count((e) => e.activityTaskScheduledEventAttributes),
      2,
      'inference and storage are the only activities',
    );
    assert.equal(
      count((e) => e.workflowTaskCompletedEventAttributes),
      3,
      'three workflow tasks',
    );
    const markers = history.flatMap((e) => e.markerRecordedEventAttributes?.markerName ?? []);
    assert.ok(markers.includes('core_local_activity'), `the safety screen ran as a local activity: ${markers.join()}`);
    assert.ok(markers.includes('core_patch'), `the lean patch is recorded (${LEAN_PIPELINE_PATCH})`);

    const described = await handle.describe();
    assert.equal(described.typedSearchAttributes.get(GenerationStatusKey), 'Completed');
    assert.equal(described.typedSearchAttributes.get(GpuTypeKey), 'a10g');
    assert.equal((await handle.query(statusQuery)).status, 'completed');
  });

  test('when storage cannot publish the terminal, the workflow publishes it', async () => {
    const req = h.request({ width: 256, height: 256, steps: 2 });
    unpublishedTerminals.add(req.requestId);
    const handle = await h.start(req);
    await handle.result();
    const history = (await handle.fetchHistory()).events ?? [];
    const scheduled = history.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    assert.deepEqual(scheduled, ['runInference', 'storeImages', 'publishEvent'], 'the workflow published it');
    assert.equal(terminals(await h.events(req)).length, 1, 'one terminal all the same');
  });

  test('a cancel while parked in pending_safety ends with one CANCELLED terminal', async () => {
    screenDown = true;
    try {
      const req = h.request();
      const handle = await h.start(req);
      await h.waitForEvent(req, (e) => e.type === 'status' && e.status === 'pending_safety');
      assert.equal((await handle.describe()).typedSearchAttributes.get(GenerationStatusKey), 'PendingSafety');
      await handle.cancel();
      await expectCancelled(handle);
      const events = await h.events(req);
      assert.deepEqual(timeline(events).slice(-2), ['status:pending_safety', 'failed']);
      const [terminal, ...more] = terminals(events);
      assert.equal(more.length, 0);
      assert.equal(terminal?.type === 'failed' ? terminal.code : undefined, 'CANCELLED');
    } finally {
      screenDown = false;
    }
  });

  test('a cancel while waiting for a GPU (no worker takes it) ends with one CANCELLED terminal', async () => {
    const req = h.request({ model: 'sdxl-turbo', tier: 'turbo', width: 512, height: 512, steps: 1 });
    const handle = await h.start(req);
    // The workflow routed it (GpuType is set) but no h100 worker ever says `generating`.
    for (let i = 0; i < 100 && (await handle.query(statusQuery)).status !== 'generating'; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await handle.query(statusQuery)).gpuType, 'h100');
    await handle.cancel();
    await expectCancelled(handle);
    const events = await h.events(req);
    assert.ok(!timeline(events).includes('status:generating'), 'no GPU worker took it');
    const [terminal, ...more] = terminals(events);
    assert.equal(more.length, 0);
    assert.equal(terminal?.type === 'failed' ? terminal.code : undefined, 'CANCELLED');
  });

  test('a cancel while generating stops the GPU and ends with one CANCELLED terminal', async () => {
    // a100 runs in real time: sd3 at 1024x1024 takes seconds.
    const req = h.request({ model: 'sd3', width: 1024, height: 1024, steps: 28 });
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'progress' && e.step >= 1);
    await handle.cancel();
    await expectCancelled(handle);
    const [terminal, ...more] = terminals(await h.events(req));
    assert.equal(more.length, 0);
    assert.equal(terminal?.type === 'failed' ? terminal.code : undefined, 'CANCELLED');
  });

  test('a cancel while uploading lets the upload finish: one completed terminal, and the run completes', async () => {
    const req = h.request({ width: 256, height: 256, steps: 2 });
    const upload = gate();
    uploadGates.set(req.requestId, upload);
    const handle = await h.start(req);
    await upload.reached;
    await handle.cancel();
    // The cancel has reached the workflow before the upload goes on.
    await new Promise((r) => setTimeout(r, 300));
    upload.open();
    const result = await handle.result();
    assert.equal(result.images.length, 1);
    const events = await h.events(req);
    const [terminal, ...more] = terminals(events);
    assert.equal(more.length, 0);
    assert.equal(terminal?.type, 'completed');
    assert.equal((await handle.describe()).typedSearchAttributes.get(GenerationStatusKey), 'Completed');
  });
});
