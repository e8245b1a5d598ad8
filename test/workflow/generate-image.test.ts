// The generateImage workflow on a real Temporal dev server with the production workers and real activities
// (rules-v1 screen, filesystem object store, Redis event log, simulated GPU backend): what a client is told,
// what operators see in Temporal, and what ends up in storage, for success, refusal, failures, retries and cancel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { InferenceError } from '../../inference/backend';
import type { PromptScreen } from '../../activities/safety';
import { RulesPromptScreen } from '../../activities/safety';
import { FAILURE_CODES } from '../../core/errors';
import type { SequencedEvent } from '../../core/events';
import { GenerationStatusKey, GpuTypeKey, ModelKey, RegionKey, TierKey, UserIdKey } from '../../core/search-attributes';
import { statusQuery, type GenerationResult } from '../../workflows';
import { decodePng } from '../helpers/png';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

/** The event types of a log, with status events spelled `status:<status>` and progress runs collapsed. */
function timeline(events: readonly SequencedEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const label = e.type === 'status' ? `status:${e.status}` : e.type;
    if (label === 'progress' && out.at(-1) === 'progress') continue;
    out.push(label);
  }
  return out;
}

function terminals(events: readonly SequencedEvent[]): SequencedEvent[] {
  return events.filter((e) => e.type === 'completed' || e.type === 'failed');
}

async function activityAttempts(handle: WorkflowHandle, activityType: string): Promise<number[]> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, string>();
  const attempts: number[] = [];
  for (const event of history.events ?? []) {
    const s = event.activityTaskScheduledEventAttributes;
    if (s?.activityType?.name) scheduled.set(String(event.eventId), s.activityType.name);
    const started = event.activityTaskStartedEventAttributes;
    if (started && scheduled.get(String(started.scheduledEventId)) === activityType)
      attempts.push(started.attempt ?? 0);
  }
  return attempts;
}

async function expectFailure(handle: WorkflowHandle): Promise<WorkflowFailedError> {
  try {
    await handle.result();
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, `expected a failed workflow, got ${String(err)}`);
    return err;
  }
  assert.fail('the workflow completed, but it should have failed');
}

describe('generateImage workflow', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  /** Attempts of the flaky inference wrapper per request. */
  const flakyInferenceRequests = new Set<string>();

  before(async () => {
    env = await createTemporalTestEnv();
    h = await startGenerationHarness(env, {
      gpus: {
        a10g: { speedup: 1000 },
        'a100-80gb': { speedup: 1000 },
        // A real-time fleet: sd3 at 1024x1024 takes ~5 s here, long enough to query and cancel mid-generation.
        a100: { speedup: 1 },
      },
      wrapInference: (activities) => ({
        async runInference(input) {
          // The request's first attempt only (the workflow retries with new activities, each attempt 1).
          if (flakyInferenceRequests.delete(input.requestId)) {
            throw new InferenceError('OutOfMemory', 'CUDA out of memory (injected on the first attempt)');
          }
          return activities.runInference(input);
        },
      }),
    });
  });

  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  test('a request completes with a stored PNG of the requested size, events in order, and searchable attributes', async () => {
    const req = h.request({ width: 640, height: 512, steps: 12 });
    const handle = await h.start(req);
    const result: GenerationResult = await handle.result();

    assert.equal(result.gpuType, 'a10g');
    assert.equal(result.routingRule, 'sdxl-standard');
    assert.equal(result.backend, 'simulated');
    assert.equal(result.images.length, 1);
    const [image] = result.images;
    assert.ok(image);
    assert.deepEqual(
      { width: image.width, height: image.height, seed: image.seed },
      { width: 640, height: 512, seed: 42 },
    );
    const stored = await h.store.get(image.key);
    assert.ok(stored, `image ${image.key} is in the object store`);
    const png = decodePng(stored.body);
    assert.deepEqual([png.width, png.height], [640, 512]);
    assert.equal(stored.info.metadata.requestId, req.requestId);
    assert.equal(stored.info.metadata.seed, '42');
    assert.match(image.key, new RegExp(`^images/user-1/${req.requestId}/0-[0-9a-f]{32}\\.png$`));
    const runId = (await handle.describe()).runId;
    assert.equal(await h.store.head(`staging/user-1/${req.requestId}/${runId}/0.png`), null, 'staging copy removed');

    const events = await h.events(req);
    // Read after the end: every status and the terminal, of the progress only the last (runtime/event-log.ts).
    assert.equal(events[0]?.seq, 1);
    assert.ok(
      events.every((e, i) => i === 0 || e.seq > (events[i - 1]?.seq ?? 0)),
      'seq only grows',
    );
    assert.deepEqual(timeline(events), [
      'accepted',
      'status:queued',
      'status:safety_check',
      'status:generating',
      'progress',
      'status:uploading',
      'completed',
    ]);
    const generating = events.find((e) => e.type === 'status' && e.status === 'generating');
    assert.equal(generating?.type === 'status' ? generating.gpuType : undefined, 'a10g');
    const progress = events.filter((e) => e.type === 'progress');
    assert.deepEqual(progress.at(-1), { type: 'progress', step: 12, totalSteps: 12, seq: progress.at(-1)?.seq });
    const completed = events.at(-1);
    assert.deepEqual(completed?.type === 'completed' ? completed.images : undefined, result.images);

    const description = await handle.describe();
    assert.equal(description.status.name, 'COMPLETED');
    const sa = description.typedSearchAttributes;
    assert.equal(sa.get(GenerationStatusKey), 'Completed');
    assert.equal(sa.get(GpuTypeKey), 'a10g');
    assert.equal(sa.get(TierKey), 'fast');
    assert.equal(sa.get(ModelKey), 'sdxl');
    assert.equal(sa.get(UserIdKey), 'user-1');
    assert.equal(sa.get(RegionKey), h.region);
    assert.equal(description.raw.workflowExecutionInfo?.priority?.priorityKey, 3, 'fast tier runs at priority 3');

    // Operators find it through visibility, which is updated asynchronously.
    const query = `GenerationStatus = "Completed" AND Region = "${h.region}" AND WorkflowId = "${handle.workflowId}"`;
    const deadline = Date.now() + 10_000;
    let found = 0;
    while (found === 0 && Date.now() < deadline) {
      for await (const _ of h.client.workflow.list({ query })) found++;
      if (found === 0) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(found, 1, `visibility query finds the request: ${query}`);
  });

  test('a batch request stores every image, each with its own seed, on the batch fleet', async () => {
    const req = h.request({ numImages: 3, seed: 1000, steps: 4 });
    const result: GenerationResult = await (await h.start(req)).result();
    assert.equal(result.gpuType, 'a100-80gb');
    assert.deepEqual(
      result.images.map((i) => i.seed),
      [1000, 1001, 1002],
    );
    const bodies = await Promise.all(result.images.map(async (i) => (await h.store.get(i.key))?.body));
    assert.equal(new Set(bodies.map((b) => b?.toString('base64'))).size, 3, 'three different images');
    for (const body of bodies) assert.deepEqual(body && [decodePng(body).width, decodePng(body).height], [512, 512]);
  });

  test('an unsafe prompt fails with UNSAFE_PROMPT before any GPU work', async () => {
    const jobsBefore = h.backends.get('a10g')?.status().counters.jobs;
    const req = h.request({ prompt: 'explicit p0rn scene in a hotel room' });
    const handle = await h.start(req);
    const err = await expectFailure(handle);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'UNSAFE_PROMPT');

    const events = await h.events(req);
    assert.deepEqual(timeline(events), ['accepted', 'status:queued', 'status:safety_check', 'failed']);
    const failed = events.at(-1);
    assert.equal(failed?.type === 'failed' ? failed.code : undefined, 'UNSAFE_PROMPT');
    assert.equal(failed?.type === 'failed' ? failed.retryable : undefined, false);
    assert.deepEqual(await activityAttempts(handle, 'runInference'), [], 'inference was never scheduled');
    assert.equal(h.backends.get('a10g')?.status().counters.jobs, jobsBefore);
    assert.equal((await handle.describe()).typedSearchAttributes.get(GenerationStatusKey), 'Failed');
  });

  test('a transient inference failure is retried and the request still completes, with one terminal event', async () => {
    const req = h.request({ prompt: 'a red bicycle against a blue wall' });
    flakyInferenceRequests.add(req.requestId);
    const handle = await h.start(req);
    const result: GenerationResult = await handle.result();
    assert.equal(result.images.length, 1);
    // The workflow retries the GPU step itself (workflows/gpu-step.ts): two activities, one try each.
    assert.deepEqual(await activityAttempts(handle, 'runInference'), [1, 1], 'a failed attempt, then the retry');
    const events = await h.events(req);
    assert.deepEqual(
      terminals(events).map((e) => e.type),
      ['completed'],
    );
    assert.equal(timeline(events).at(-1), 'completed');
  });

  test('a model no worker serves fails with MODEL_UNAVAILABLE without retrying', async () => {
    const req = h.request({ model: 'tiny-sd', width: 64, height: 64, steps: 2 });
    const handle = await h.start(req);
    const err = await expectFailure(handle);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'MODEL_UNAVAILABLE');
    assert.deepEqual(await activityAttempts(handle, 'runInference'), [1]);
    const events = await h.events(req);
    const [failed, ...more] = terminals(events);
    assert.equal(more.length, 0);
    assert.equal(failed?.type === 'failed' ? failed.code : undefined, 'MODEL_UNAVAILABLE');
    // The client reads the code's meaning and a correlation id, not which worker failed how; operators see that.
    assert.ok(failed?.type === 'failed');
    assert.equal(failed.message, FAILURE_CODES.MODEL_UNAVAILABLE);
    assert.equal(failed.correlationId, (await handle.describe()).runId);
    assert.match(err.cause.message, /does not serve model tiny-sd/, 'the details stay in Temporal');
  });

  test('the status query follows the request while it generates and after it completes', async () => {
    const req = h.request({ model: 'sd3', width: 1024, height: 1024, steps: 12 });
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'progress');
    const during = await handle.query(statusQuery);
    assert.equal(during.status, 'generating');
    assert.equal(during.gpuType, 'a100');
    assert.equal(during.totalSteps, 12);
    assert.equal(during.images, undefined);
    const result: GenerationResult = await handle.result();
    const done = await handle.query(statusQuery);
    assert.equal(done.status, 'completed');
    assert.equal(done.step, 12);
    assert.deepEqual(done.images, result.images);
  });

  test('cancelling a request stops inference within a step and publishes exactly one CANCELLED event', async () => {
    const backend = h.backends.get('a100');
    const cancelledBefore = backend?.status().counters.cancelled ?? 0;
    const req = h.request({ model: 'sd3', width: 1024, height: 1024, steps: 28 });
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'progress' && e.step >= 2);
    const cancelledAt = Date.now();
    await handle.cancel();
    const err = await expectFailure(handle);
    assert.ok(err.cause instanceof CancelledFailure, `cancelled, not failed: ${String(err.cause)}`);
    assert.ok(Date.now() - cancelledAt < 4000, `closed ${Date.now() - cancelledAt} ms after cancel`);

    assert.equal(backend?.status().counters.cancelled, cancelledBefore + 1, 'the backend saw the abort');
    assert.equal(backend?.status().counters.active, 0, 'the GPU is free');
    const events = await h.events(req);
    const [terminal, ...more] = terminals(events);
    assert.equal(more.length, 0, 'exactly one terminal event');
    assert.equal(terminal?.type === 'failed' ? terminal.code : undefined, 'CANCELLED');
    assert.equal(timeline(events).at(-1), 'failed', 'nothing after the terminal event');
    const lastStep = Math.max(
      ...events.filter((e) => e.type === 'progress').map((e) => (e.type === 'progress' ? e.step : 0)),
    );
    assert.ok(lastStep < 28, `inference stopped early (last step ${lastStep})`);
    assert.equal((await handle.describe()).typedSearchAttributes.get(GenerationStatusKey), 'Cancelled');
    assert.equal((await handle.query(statusQuery)).failure?.code, 'CANCELLED');
    const runId = (await handle.describe()).runId;
    assert.equal(await h.store.head(`staging/user-1/${req.requestId}/${runId}/0.png`), null, 'nothing staged');
  });
});

describe('generateImage workflow while the safety screen is down', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  let screenCalls = 0;

  /** The rules-v1 screen behind an outage that lasts for its first four calls (like a Safety API restart). */
  const flakyScreen: PromptScreen = {
    name: 'rules-v1',
    async screen(prompt) {
      screenCalls++;
      if (screenCalls <= 4) throw new Error('Safety service unavailable (injected outage)');
      return new RulesPromptScreen().screen(prompt);
    },
  };

  before(async () => {
    env = await createTemporalTestEnv();
    h = await startGenerationHarness(env, { screen: flakyScreen });
  });

  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  test('the request waits in pending_safety and completes once the screen is back', async () => {
    const req = h.request();
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'status' && e.status === 'pending_safety');
    const result: GenerationResult = await handle.result();
    assert.equal(result.images.length, 1);
    assert.equal(screenCalls, 5);
    assert.deepEqual(timeline(await h.events(req)), [
      'accepted',
      'status:queued',
      'status:safety_check',
      'status:pending_safety',
      'status:generating',
      'progress',
      'status:uploading',
      'completed',
    ]);
  });
});
