// Request recovery by failure type on a real Temporal dev server with the production workers: an out-of-memory
// attempt runs again alone on a larger-VRAM fleet, a corrupted model is retried, every retry carries a higher
// Temporal priority than its tier's, and each request still ends with exactly one terminal event.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { InferenceInput } from '../../core/activities';
import type { GpuType } from '../../core/gpu';
import { activityFailure } from '../../activities/failures';
import { MAX_GPU_RETRIES, POISON_DISTINCT_WORKERS } from '../../core/recovery';
import { QuarantinedKey } from '../../core/search-attributes';
import { GPU_RECOVERY_PATCH } from '../../workflows/gpu-step';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

const OOM_PROMPT = 'a cathedral of glass (out of memory on the first attempt)';
const CORRUPT_PROMPT = 'a lantern in fog (corrupted model on the first attempt)';
/** Fails every attempt, each on a different worker: a poison request. */
const POISON_PROMPT = 'a spiral staircase (crashes every worker)';
/** Fails every attempt on the same worker: a bad worker, not a poison request. */
const BAD_WORKER_PROMPT = 'a windmill at noon (one bad worker)';

interface Attempt {
  readonly gpuType: GpuType;
  readonly soloBatch: boolean;
  readonly priorityKey: number | undefined;
}

describe('GPU step recovery by failure type (seed 001)', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  const attempts = new Map<string, Attempt[]>();

  before(async () => {
    env = await createTemporalTestEnv();
    h = await startGenerationHarness(env, {
      gpus: { a10g: {}, a100: {} },
      wrapInference: (activities, gpuType) => ({
        async runInference(input: InferenceInput) {
          const seen = attempts.get(input.prompt) ?? [];
          seen.push({
            gpuType,
            soloBatch: input.soloBatch === true,
            priorityKey: Context.current().info.priority?.priorityKey,
          });
          attempts.set(input.prompt, seen);
          // Failures as the real activity raises them (activities/inference.ts toActivityFailure).
          if (seen.length === 1 && input.prompt === OOM_PROMPT) {
            throw activityFailure('OutOfMemory', 'CUDA out of memory (injected)');
          }
          if (seen.length === 1 && input.prompt === CORRUPT_PROMPT) {
            throw activityFailure('ModelCorrupted', 'unet.onnx failed its checksum (injected)');
          }
          if (input.prompt === POISON_PROMPT || input.prompt === BAD_WORKER_PROMPT) {
            const workerId = input.prompt === POISON_PROMPT ? `worker-${seen.length}` : 'worker-bad';
            throw activityFailure('InferenceFailed', 'the UNet returned NaN (injected)', { details: [{ workerId }] });
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

  test('OUT_OF_MEMORY: the retry runs alone on the A100 (larger VRAM), ahead of fresh fast requests', async () => {
    const req = h.request({ prompt: OOM_PROMPT, tier: 'fast' });
    const handle = await h.start(req);
    const result = await handle.result();
    assert.equal(result.gpuType, 'a100');
    assert.deepEqual(attempts.get(OOM_PROMPT), [
      { gpuType: 'a10g', soloBatch: false, priorityKey: 3 },
      { gpuType: 'a100', soloBatch: true, priorityKey: 2 },
    ]);
    const events = await h.events(req);
    assert.equal(events.filter((e) => e.type === 'completed' || e.type === 'failed').length, 1);
    const history = (await handle.fetchHistory()).events ?? [];
    // Two patch markers: the lean pipeline's and, at the first failure, the recovery's.
    const patches = history.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
    assert.equal(patches.length, 2, `the ${GPU_RECOVERY_PATCH} marker is recorded`);
  });

  test('MODEL_CORRUPTION: a standard retry on the same fleet, boosted, and the request completes', async () => {
    const req = h.request({ prompt: CORRUPT_PROMPT, tier: 'relax' });
    const result = await (await h.start(req)).result();
    assert.equal(result.gpuType, 'a10g');
    assert.deepEqual(attempts.get(CORRUPT_PROMPT), [
      { gpuType: 'a10g', soloBatch: false, priorityKey: 5 },
      { gpuType: 'a10g', soloBatch: false, priorityKey: 4 },
    ]);
  });

  test('a request that fails on three different workers is quarantined: no more retries, findable, one terminal', async () => {
    const req = h.request({ prompt: POISON_PROMPT, tier: 'fast' });
    const handle = await h.start(req);
    await assert.rejects(handle.result());
    assert.equal(attempts.get(POISON_PROMPT)?.length, POISON_DISTINCT_WORKERS, 'it stops at the third worker');
    const described = await handle.describe();
    assert.equal(described.typedSearchAttributes.get(QuarantinedKey), true, 'Quarantined = true in the Web UI');
    const events = await h.events(req);
    const terminals = events.filter((e) => e.type === 'completed' || e.type === 'failed');
    assert.equal(terminals.length, 1);
    assert.deepEqual(
      terminals[0]?.type === 'failed' && { code: terminals[0].code, retryable: terminals[0].retryable },
      { code: 'INFERENCE_FAILED', retryable: false },
      'the client is told not to resubmit it',
    );
    const history = (await handle.fetchHistory()).events ?? [];
    const failure = history.at(-1)?.workflowExecutionFailedEventAttributes?.failure;
    assert.match(JSON.stringify(failure), /Quarantined/);
  });

  test('failing on one worker again and again is that worker, not the request: retries run out, no quarantine', async () => {
    const req = h.request({ prompt: BAD_WORKER_PROMPT, tier: 'fast' });
    const handle = await h.start(req);
    await assert.rejects(handle.result());
    assert.equal(attempts.get(BAD_WORKER_PROMPT)?.length, 1 + MAX_GPU_RETRIES);
    assert.notEqual((await handle.describe()).typedSearchAttributes.get(QuarantinedKey), true);
    const events = await h.events(req);
    const failed = events.find((e) => e.type === 'failed');
    assert.equal(failed?.type === 'failed' && failed.retryable, true, 'a resubmission may land on a healthy worker');
  });
});
