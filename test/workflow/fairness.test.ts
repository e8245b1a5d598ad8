// Fairness between users (issue 11) on a real Temporal dev server with the production workers: one user has 200 relax
// requests queued on a fleet of one single-slot GPU worker; another user then sends 5, one at a time, each once the
// previous one has started (a user waiting on their results). Every GPU attempt carries its user as Temporal fairness
// key (core/fairness.ts), and the dev server runs with fairness on (infra/temporal.ts), so each light request starts
// within 2 service times of entering the queue: the request on the GPU when it arrived, then at most one heavy
// request, dispatched ahead of it because equal weights alternate (stride scheduling, ties to the older task).
// Entering the queue is the GPU attempt's scheduled time: before it, the request's first workflow task (safety screen,
// routing) takes 50-100 ms here, printed for each request, and fairness has no say in it.
//
// Without fairness the queue is first come, first served within a tier, and each light request would start only
// after every heavy request queued before it: over 100 here (asserted), so at least 100 service times, about 25 s,
// where it now waits at most 2. Measured both ways the fairness can be missing, the first light request waited
// 46 s, while 187 heavy requests started ahead of it: with the fairness keys left off the GPU attempts (46.4 s), and
// with the keys but without `matching.enableFairness` in the dev server's dynamic config (46.2 s).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DEFAULT_FAIRNESS_WEIGHT } from '../../core/fairness';
import type { GenerationRequest } from '../../core/request';
import { eventually } from '../helpers/eventually';
import { observeGpuAttempts } from '../helpers/gpu-attempts';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

const HEAVY_USER = 'heavy-user';
const LIGHT_USER = 'light-user';
const HEAVY_REQUESTS = 200;
const LIGHT_REQUESTS = 5;
/**
 * SDXL at 512x512 with 8 steps models 0.58 s on an A10G; sped up 3 times, about 190 ms on the simulated GPU, and
 * 230-300 ms from one request's start to the next with the activity round trip and the PNG: 200 requests are a
 * backlog of about a minute, of which the test sees the first 10 s or so.
 */
const SPEEDUP = 3;
/**
 * Slack on the 2-service-time bound: single service times on a shared 2-core machine vary (one run saw 223 to
 * 687 ms between starts). What no slowness changes is asserted besides: at most one request started while a light
 * one waited.
 */
const TOLERANCE = 1.5;
/** Far below the heavy backlog's length (over 25 s), so that waiting behind it fails here rather than at the file's limit. */
const LIGHT_START_TIMEOUT_MS = 15_000;

/** One GPU attempt as the worker saw it start. */
interface GpuStart {
  readonly userId: string;
  readonly requestId: string;
  /** When the server queued the attempt (its scheduled time), ms since epoch. */
  readonly queuedAt: number;
  /** When the worker started it, ms since epoch (the same machine's clock as the server's). */
  readonly startedAt: number;
  readonly fairnessKey: string | undefined;
  readonly fairnessWeight: number | undefined;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

describe('fairness between users on a GPU queue (issue 11)', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  const starts: GpuStart[] = [];
  const onStart = new Map<string, (start: GpuStart) => void>();

  before(async () => {
    env = await createTemporalTestEnv();
    h = await startGenerationHarness(env, {
      gpus: { a10g: { slots: 1, speedup: SPEEDUP } },
      wrapInference: observeGpuAttempts({
        start(input, info) {
          const start: GpuStart = {
            userId: input.userId,
            requestId: input.requestId,
            queuedAt: info.currentAttemptScheduledTimestampMs,
            startedAt: Date.now(),
            fairnessKey: info.priority?.fairnessKey,
            fairnessWeight: info.priority?.fairnessWeight,
          };
          starts.push(start);
          onStart.get(input.requestId)?.(start);
        },
      }),
    });
  });
  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  const relaxRequest = (userId: string): GenerationRequest => ({ ...h.request({ tier: 'relax' }), userId });
  const startedBy = (userId: string): number => starts.filter((s) => s.userId === userId).length;

  test("a light user's requests start within 2 service times, not after the heavy user's backlog", async (t) => {
    const heavy = Array.from({ length: HEAVY_REQUESTS }, () => relaxRequest(HEAVY_USER));
    for (let i = 0; i < heavy.length; i += 25) await Promise.all(heavy.slice(i, i + 25).map((req) => h.start(req)));
    // Every heavy request has its GPU attempt queued: the workflow sets GenerationStatus to Generating in the workflow
    // task that schedules it, so none is still Queued (visibility lags; it never runs ahead).
    const region = h.region;
    await eventually(
      async () =>
        (
          await env.client.workflow.count(
            `UserId = "${HEAVY_USER}" AND Region = "${region}" AND GenerationStatus != "Queued"`,
          )
        ).count >= HEAVY_REQUESTS,
      30_000,
      'every heavy request to reach the GPU queue',
    );

    const light: { submittedAt: number; heavyAhead: number; start: GpuStart }[] = [];
    for (let k = 0; k < LIGHT_REQUESTS; k++) {
      const req = relaxRequest(LIGHT_USER);
      const started = new Promise<GpuStart>((resolve, reject) => {
        onStart.set(req.requestId, resolve);
        setTimeout(
          () => reject(new Error(`light request ${k + 1} did not start within ${LIGHT_START_TIMEOUT_MS} ms`)),
          LIGHT_START_TIMEOUT_MS,
        ).unref();
      });
      const submittedAt = Date.now();
      // What first come, first served would put ahead of it: every heavy request queued and not yet started.
      const heavyAhead = HEAVY_REQUESTS - startedBy(HEAVY_USER);
      await h.start(req);
      light.push({ submittedAt, heavyAhead, start: await started });
    }

    // The service time while the light requests waited: the median time from one GPU start to the next between the
    // first light request's start and the last's (light and heavy requests alike, all of one size).
    const [first, last] = [light[0]?.start.startedAt ?? 0, light.at(-1)?.start.startedAt ?? 0];
    const window = starts.filter((s) => s.startedAt >= first && s.startedAt <= last);
    const serviceMs = median(window.slice(1).map((s, i) => s.startedAt - (window[i]?.startedAt ?? Number.NaN)));
    const boundMs = 2 * serviceMs * TOLERANCE;
    t.diagnostic(`service time (median time between GPU starts): ${serviceMs} ms; bound ${boundMs.toFixed(0)} ms`);
    for (const [k, { submittedAt, heavyAhead, start }] of light.entries()) {
      const waitMs = start.startedAt - start.queuedAt;
      const overtaken = starts.filter((s) => s.startedAt > start.queuedAt && s.startedAt < start.startedAt);
      t.diagnostic(
        `light ${k + 1}: queued ${start.queuedAt - submittedAt} ms after its submission, ` +
          `waited ${waitMs} ms (${(waitMs / serviceMs).toFixed(2)} service times) while ${overtaken.length} other ` +
          `request(s) started; ${heavyAhead} heavy requests were queued ahead of it`,
      );
      assert.ok(
        heavyAhead >= HEAVY_REQUESTS / 2,
        `light request ${k + 1} arrived behind ${heavyAhead} heavy requests: too few to tell fair from first come`,
      );
      assert.ok(
        overtaken.length <= 1,
        `light request ${k + 1}: ${overtaken.length} requests started while it waited (at most 1: one heavy request)`,
      );
      assert.ok(
        waitMs <= boundMs,
        `light request ${k + 1} waited ${waitMs} ms in the queue, over 2 service times of ${serviceMs} ms (with slack)`,
      );
    }
    // Fair both ways: the heavy user kept its turns between the light requests, it was not paused for them.
    const heavyInWindow = window.filter((s) => s.userId === HEAVY_USER).length;
    assert.ok(heavyInWindow >= LIGHT_REQUESTS - 1, `only ${heavyInWindow} heavy requests ran between the light ones`);
    for (const s of starts) {
      assert.equal(s.fairnessKey, s.userId, 'every GPU attempt carries its user as fairness key');
      assert.equal(s.fairnessWeight, DEFAULT_FAIRNESS_WEIGHT, 'a request with no plan weight gets weight 1');
    }
  });
});
