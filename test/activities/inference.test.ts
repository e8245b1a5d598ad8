// The runInference activity with the simulated GPU backend, in a mock activity context: heartbeats on a timer,
// throttled and ordered progress events in Redis, PNGs staged in the object store, cancellation that frees the
// GPU within one step, and backend failures typed for the workflow's retry policy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backendsByModel, createInferenceActivities } from '../../activities';
import { InferenceError, type BackendStatus, type InferenceBackend } from '../../inference/backend';
import { SimulatedGpuBackend, modelledStepMs } from '../../inference/simulated';
import type { InferenceHeartbeat, InferenceOutcome } from '../../activities/inference';
import type { InferenceInput, InferenceOutput } from '../../core/activities';
import type { FailureType } from '../../core/errors';
import { MODEL_NAMES } from '../../core/models';
import { RedisEventLog } from '../../runtime/event-log';
import { FsObjectStore } from '../../runtime/object-store';
import { decodePng } from '../helpers/png';
import { testRedis, type TestRedis } from '../helpers/redis';

function input(fields: Partial<InferenceInput> = {}): InferenceInput {
  return {
    requestId: `req-${Math.random().toString(36).slice(2, 10)}`,
    userId: 'user-1',
    model: 'sdxl',
    prompt: 'a lighthouse at dusk',
    negativePrompt: '',
    width: 512,
    height: 384,
    steps: 10,
    seed: 42,
    numImages: 1,
    guidanceScale: 7.5,
    loras: [],
    controlnets: [],
    gpuType: 'a10g',
    ...fields,
  };
}

/** An activity context for the workflow `gen:user-1:<requestId>`, as the worker would give one. */
function mockContext(req: InferenceInput): MockActivityEnvironment {
  return new MockActivityEnvironment(
    {
      workflowExecution: { workflowId: `gen:${req.userId}:${req.requestId}`, runId: 'run-1' },
      activityType: 'runInference',
      heartbeatTimeoutMs: 30_000,
    },
    { logger: new DefaultLogger('ERROR') },
  );
}

/** A backend whose every job fails with one InferenceError type, as a broken GPU or model file would. */
class FailingBackend implements InferenceBackend {
  readonly name = 'failing';
  constructor(private readonly failureType: FailureType) {}
  supports(): boolean {
    return true;
  }
  async generate(): Promise<never> {
    throw new InferenceError(this.failureType, `injected ${this.failureType}`, { cause: new Error('device error') });
  }
  status(): BackendStatus {
    return { backend: this.name, ready: true, loadedModels: [], counters: {} };
  }
  async close(): Promise<void> {}
}

describe('runInference activity', () => {
  let r: TestRedis;
  let eventLog: RedisEventLog;
  let storeDir: string;
  let store: FsObjectStore;

  before(async () => {
    r = await testRedis();
    eventLog = new RedisEventLog(r.redis, { prefix: r.prefix });
    storeDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-inference-'));
    store = new FsObjectStore(storeDir);
  });
  after(async () => {
    await r.cleanup();
    await rm(storeDir, { recursive: true, force: true });
  });

  /** What the activities told the worker's health rules, in order. */
  let outcomes: InferenceOutcome[] = [];

  function activities(backend: InferenceBackend, progressIntervalMs = 100, heartbeatIntervalMs = 1000) {
    return createInferenceActivities({
      backends: backendsByModel([backend], MODEL_NAMES),
      store,
      eventLog,
      workerId: 'test-worker',
      progressIntervalMs,
      heartbeatIntervalMs,
      onOutcome: (outcome) => outcomes.push(outcome),
    });
  }

  test('says generating, heartbeats on a timer with the last step, publishes ordered progress, stages a PNG', async () => {
    // ~15 ms per step, 20 steps: about 300 ms, so a 50 ms heartbeat period beats a handful of times.
    const speedup = modelledStepMs({ model: 'sdxl', width: 512, height: 384, numImages: 1 }, 'a10g') / 15;
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup });
    const req = input({ steps: 20 });
    const env = mockContext(req);
    const beats: InferenceHeartbeat[] = [];
    env.on('heartbeat', (d: InferenceHeartbeat) => beats.push(d));
    const logId = `gen:user-1:${req.requestId}`;
    await eventLog.publish(logId, { type: 'accepted', workflowId: logId }, 'accepted'); // as the gateway does

    const out: InferenceOutput = await env.run(activities(backend, 10, 50).runInference, req);

    assert.ok(beats.length >= 2, `heartbeats while it ran: ${JSON.stringify(beats)}`);
    assert.ok(beats.length < 20, `on a timer, not one per step (${beats.length} for 20 steps)`);
    const steps = beats.map((b) => b.step);
    assert.deepEqual(
      steps,
      [...steps].sort((a, b) => a - b),
      'each heartbeat carries the last finished step',
    );
    assert.ok(beats.every((b) => b.totalSteps === 20));
    assert.equal(out.backend, 'simulated');
    assert.equal(out.workerId, 'test-worker');
    assert.deepEqual(
      outcomes.at(-1),
      { model: 'sdxl', requestId: req.requestId, failureType: undefined },
      'a success is told to the health rules',
    );
    assert.ok(
      beats.every((b) => b.workerId === 'test-worker'),
      'heartbeats name the worker',
    );
    assert.deepEqual(out.seeds, [42]);
    assert.deepEqual(out.stagingKeys, [`staging/user-1/${req.requestId}/run-1/0.png`]);
    const staged = await store.get(out.stagingKeys[0] as string);
    assert.ok(staged);
    const png = decodePng(staged.body);
    assert.deepEqual([png.width, png.height], [512, 384]);

    const [, first, ...events] = await eventLog.read(logId, 0);
    assert.deepEqual(first && { type: first.type, ...(first.type === 'status' ? first : {}) }, {
      type: 'status',
      status: 'generating',
      gpuType: 'a10g',
      seq: 2,
    });
    assert.ok(events.length >= 5, `progress was published (${events.length} events)`);
    assert.ok(events.every((e) => e.type === 'progress'));
    const published = events.map((e) => (e.type === 'progress' ? e.step : -1));
    assert.deepEqual(
      published,
      [...published].sort((a, b) => a - b),
      'progress in step order',
    );
    assert.equal(published.at(-1), 20, 'the last step is always published');
  });

  test('progress events are throttled to the interval however fast the steps are', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'h100', speedup: 1e6 });
    const req = input({ steps: 100, gpuType: 'h100' });
    await mockContext(req).run(activities(backend, 10_000).runInference, req);
    const events = (await eventLog.read(`gen:user-1:${req.requestId}`, 0)).filter((e) => e.type === 'progress');
    assert.deepEqual(
      events.map((e) => (e.type === 'progress' ? e.step : -1)),
      [1, 100],
      'the first step, then only the last one within a 10 s interval',
    );
  });

  test('cancellation stops inference within one step and stages nothing', async () => {
    const stepMs = 200;
    const speedup = modelledStepMs({ model: 'sdxl', width: 512, height: 384, numImages: 1 }, 'a10g') / stepMs;
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup });
    const req = input({ steps: 50 });
    const env = mockContext(req);
    let cancelledAt = 0;
    env.on('heartbeat', (d: InferenceHeartbeat) => {
      if (d.step >= 2 && cancelledAt === 0) {
        cancelledAt = performance.now();
        env.cancel();
      }
    });
    await assert.rejects(env.run(activities(backend, 100, 50).runInference, req), (err: Error) => {
      assert.equal(
        err.name,
        'AbortError',
        `rejects with an AbortError, which the SDK reports as cancelled: ${err.name}`,
      );
      return true;
    });
    const stoppedWithinMs = performance.now() - cancelledAt;
    assert.ok(
      stoppedWithinMs < stepMs,
      `stopped ${stoppedWithinMs.toFixed(0)} ms after cancel (one step is ${stepMs} ms)`,
    );
    const status = backend.status();
    assert.equal(status.counters.cancelled, 1);
    assert.equal(status.counters.active, 0);
    assert.ok((status.counters.steps ?? 0) <= 4, `no step ran after the cancel (${status.counters.steps} steps)`);
    assert.equal(await store.head(`staging/user-1/${req.requestId}/run-1/0.png`), null);
  });

  test('a request shorter than the heartbeat period sends no heartbeat at all', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: 100_000 });
    const req = input({ steps: 4 });
    const env = mockContext(req);
    let beats = 0;
    env.on('heartbeat', () => beats++);
    await env.run(activities(backend, 100, 1000).runInference, req);
    assert.equal(beats, 0);
  });

  test('backend failures become ApplicationFailures typed for the retry policy', async () => {
    const cases: [FailureType, boolean][] = [
      ['OutOfMemory', false],
      ['ModelCorrupted', false],
      ['ModelNotFound', true],
      ['InferenceFailed', false],
    ];
    outcomes = [];
    for (const [failureType, nonRetryable] of cases) {
      const req = input();
      await assert.rejects(
        mockContext(req).run(activities(new FailingBackend(failureType)).runInference, req),
        (err: unknown) => {
          assert.ok(err instanceof ApplicationFailure, `${failureType}: ${String(err)}`);
          assert.equal(err.type, failureType);
          assert.equal(err.nonRetryable, nonRetryable, `${failureType} nonRetryable`);
          assert.match(err.message, /injected/);
          assert.deepEqual(err.details, [{ workerId: 'test-worker' }], 'the failure names its worker');
          return true;
        },
      );
    }
    // The health rules hear of every failure with its type; they decide what counts against what.
    assert.deepEqual(
      outcomes.map((o) => o.failureType),
      cases.map(([type]) => type),
    );
  });

  test('a model without a backend on this worker fails as ModelNotFound, without retries', async () => {
    const backend = new SimulatedGpuBackend({ gpuType: 'a10g', speedup: 1000 });
    const req = input({ model: 'tiny-sd', width: 64, height: 64 });
    await assert.rejects(mockContext(req).run(activities(backend).runInference, req), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'ModelNotFound');
      assert.equal(err.nonRetryable, true);
      return true;
    });
  });
});
