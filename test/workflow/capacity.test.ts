// The GPU step has a schedule-to-start bound per fleet: a request routed to a fleet where no worker
// runs moves to the next fleet the routing matrix allows, and when no allowed fleet starts it the request ends with
// NO_CAPACITY (retryable) and exactly one terminal event, instead of waiting for ever. Real Temporal dev server, real
// workers, with the bound shortened for the test (GenerationRequest.gpuStartTimeoutMs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { GpuTypeKey } from '../../core/search-attributes';
import type { GenerationRequest } from '../../core/request';
import { statusQuery } from '../../workflows/generate-image';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

const BOUND_MS = 1500;

describe('GPU capacity: bounded wait per fleet, then alternatives, then NO_CAPACITY', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  before(async () => {
    env = await createTemporalTestEnv();
    // Only an A100 fleet runs: no A10G, L4 or H100 worker anywhere.
    h = await startGenerationHarness(env, { gpus: { a100: {} } });
  });
  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  const request = (fields: Record<string, unknown>): GenerationRequest => ({
    ...h.request(fields),
    gpuStartTimeoutMs: BOUND_MS,
  });

  test('an SDXL request whose A10G and L4 fleets have no worker runs on the A100 alternative', async () => {
    const req = request({ tier: 'fast', model: 'sdxl' });
    const handle = await h.start(req);
    const result = await handle.result();
    assert.equal(result.gpuType, 'a100');
    assert.equal(result.routingRule, 'sdxl-standard');
    assert.equal((await handle.describe()).typedSearchAttributes.get(GpuTypeKey), 'a100');
    const events = await h.events(req);
    const generating = events.filter((e) => e.type === 'status' && e.status === 'generating');
    assert.equal(generating.length, 1, 'the worker that took it said generating, once');
    assert.equal(events.filter((e) => e.type === 'completed' || e.type === 'failed').length, 1);
    assert.equal(events.at(-1)?.type, 'completed');
  });

  test('a turbo request runs on the A100, the last of its fleets (H100, A100-80GB, A100)', async () => {
    const req = request({ tier: 'turbo', model: 'sdxl' });
    const result = await (await h.start(req)).result();
    assert.equal(result.gpuType, 'a100');
  });

  test('a request no allowed fleet starts ends NO_CAPACITY, retryable, with exactly one terminal event', async () => {
    // Only A10G runs here, and a turbo request may use none of it (H100, A100-80GB, A100): any client could send one.
    const bare = await startGenerationHarness(env, { gpus: { a10g: {} } });
    try {
      const req = { ...bare.request({ tier: 'turbo', model: 'sdxl' }), gpuStartTimeoutMs: BOUND_MS };
      const handle = await bare.start(req);
      const err = await handle.result().then(
        () => assert.fail('the request completed with no fleet that could run it'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const events = await bare.events(req);
      const terminal = events.filter((e) => e.type === 'completed' || e.type === 'failed');
      assert.equal(terminal.length, 1);
      const [failed] = terminal;
      assert.equal(failed?.type, 'failed');
      if (failed?.type !== 'failed') return;
      assert.equal(failed.code, 'NO_CAPACITY');
      assert.equal(failed.retryable, true);
      assert.equal((await handle.query(statusQuery)).failure?.code, 'NO_CAPACITY');
      // Three fleets (h100, a100-80gb, a100), one bounded wait each.
      const history = (await handle.fetchHistory()).events ?? [];
      const timedOut = history.filter((e) => e.activityTaskTimedOutEventAttributes);
      assert.equal(timedOut.length, 3);
    } finally {
      await bare.stop();
    }
  });
});
