// Chaos, seed 001 `queue_pressure`: "inject 10x traffic spike; priority queues work correctly, no cascading
// failures". A baseline of 2 requests keeps the A10G fleet busy, then 20 arrive at once (10x) in three tiers, and the
// experiment measures each request's queue wait as its client saw it: `accepted` -> `status: generating` (the GPU
// worker says `generating` the moment it takes the request, activities/inference.ts).
//
// Which tiers can share a queue (core/routing.ts): turbo always goes to H100, and nothing else is routed there first,
// so turbo never queues behind another tier; it is bounded by having a fleet of its own. Standard SDXL of the fast and
// relax tiers both go to the A10G fleet (`sdxl-standard`), relax to its relax lane, which the worker serves only while
// it has no fast work (workers/relax-lane.ts): the spike sends its relax requests first, so a first-come-first-served
// queue would start every relax request before any fast one, and the fleet must start every fast one first.
//
// Each GPU worker takes one request at a time here (ATELIER_GPU_SLOTS=1): the simulated GPU runs one job at a time,
// and a worker holding more (the default takes 8 when the ONNX backend is enabled) announces `generating` as it takes
// each one and queues the rest itself (by priority too: inference/gpu-gate.ts), so accepted -> generating would no
// longer be the queue wait whose order this experiment checks.
//
// Seed 001's "scale-up triggers" is not validated: the local stack has no autoscaler.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { StackHandle } from '../../infra/test-stack';
import type { TestSocket } from '../helpers/ws-client';
import { FrameTimes, waitFigures } from './frame-times';
import { assertEachCompletedOnce, countOutcomes, reportExperiment, useChaosStack } from './harness';

const BASELINE = 2;
/** The 10x spike, relax first (see above); 8 + 8 share the A10G queue, 4 turbo have H100 to themselves. */
const SPIKE: readonly Tier[] = [...repeat<Tier>('relax', 8), ...repeat<Tier>('fast', 8), ...repeat<Tier>('turbo', 4)];
/** Turbo's bound: its schedule-to-start on a fleet (workflows/activity-options.ts), after which it would move on. */
const TURBO_SCHEDULE_TO_START_MS = 60_000;

type Tier = 'turbo' | 'fast' | 'relax';

interface Submission {
  readonly requestId: string;
  readonly tier: Tier;
  readonly side: number;
  readonly steps: number;
}

function repeat<T>(value: T, n: number): T[] {
  return Array.from({ length: n }, () => value);
}

/** Sends every request at once and waits until each is accepted. */
async function sendAccepted(socket: TestSocket, submissions: readonly Submission[]): Promise<void> {
  for (const s of submissions) {
    socket.send({
      type: 'generate',
      requestId: s.requestId,
      prompt: `a harbour under a spring storm, ${s.requestId}`,
      model: 'sdxl',
      tier: s.tier,
      width: s.side,
      height: s.side,
      steps: s.steps,
    });
  }
  for (const s of submissions) {
    const f = await socket.waitFor((x) => x.requestId === s.requestId && ['accepted', 'rejected'].includes(x.type));
    assert.equal(f.type, 'accepted', JSON.stringify(f));
  }
}

/** Requests served per tier and fleet, from the gateway's queue-wait histogram (labelled with the fleet). */
async function servedBy(stack: StackHandle): Promise<Record<string, Record<string, number>>> {
  const text = await (await fetch(`${stack.gatewayHttpUrl}/metrics`)).text();
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n')) {
    const m = /^atelier_request_queue_wait_seconds_count\{(.*)\} (\d+)$/.exec(line);
    const tier = /tier="([^"]+)"/.exec(m?.[1] ?? '')?.[1];
    const gpu = /gpu_type="([^"]+)"/.exec(m?.[1] ?? '')?.[1];
    if (m && tier && gpu) (out[tier] ??= {})[gpu] = Number(m[2]);
  }
  return out;
}

/** No cascade: every process still runs (none died and was restarted) and answers /readyz. */
async function assertStackStillUp(stack: StackHandle, pidsBefore: string): Promise<void> {
  assert.equal(JSON.stringify(stack.children()), pidsBefore, 'no process of the stack died or was restarted');
  const readyz = [
    `${stack.gatewayHttpUrl}/readyz`,
    ...Object.entries(stack.metricsUrls())
      .filter(([name]) => name.includes('worker'))
      .map(([, url]) => url.replace(/\/metrics$/, '/readyz')),
  ];
  for (const url of readyz) {
    const res = await fetch(url);
    assert.equal(res.status, 200, `${url}: ${await res.text()}`);
  }
}

describe('queue_pressure: a 10x spike of mixed tiers on a busy fleet', () => {
  const chaos = useChaosStack({ ATELIER_GPU_SLOTS: '1' });

  test('priority holds, nothing cascades, every request completes exactly once', async () => {
    const { stack, socket } = chaos;
    const times = new FrameTimes(socket);
    const pidsBefore = JSON.stringify(stack.children());
    const label = `pressure-${Date.now()}`;
    // The baseline: large enough (1024x1024, 30 steps: about 4 s each on the simulated A10G) that the whole spike is
    // queued behind it before the fleet takes its next request.
    const baseline = Array.from({ length: BASELINE }, (_, i) => ({
      requestId: `${label}-base-${i}`,
      tier: 'fast' as const,
      side: 1024,
      steps: 30,
    }));
    await sendAccepted(socket, baseline);
    await socket.waitFor((f) => f.requestId === baseline[0]?.requestId && f.status === 'generating', 60_000);

    const spike = SPIKE.map((tier, i) => ({ requestId: `${label}-spike-${i}-${tier}`, tier, side: 512, steps: 20 }));
    const spikeSentAt = Date.now();
    await sendAccepted(socket, spike);
    const ids = [...baseline, ...spike].map((s) => s.requestId);
    await assertEachCompletedOnce(socket, ids);
    const recoveryMs = Math.max(...ids.map((id) => times.at(id, 'completed') ?? Infinity)) - spikeSentAt;

    const waitsOf = (tier: Tier) =>
      spike.filter((s) => s.tier === tier).map((s) => times.between(s.requestId, 'accepted', 'status:generating'));
    const waits = {
      turbo: waitFigures(waitsOf('turbo')),
      fast: waitFigures(waitsOf('fast')),
      relax: waitFigures(waitsOf('relax')),
    };
    const startOf = (tier: Tier) =>
      spike.filter((s) => s.tier === tier).map((s) => times.at(s.requestId, 'status:generating') ?? Infinity);
    const lastFastStart = Math.max(...startOf('fast'));
    // Relax requests that a GPU took before the last fast one: first come, first served would make it all 8.
    const overtakes = startOf('relax').filter((t) => t < lastFastStart).length;
    const served = await servedBy(stack);
    process.stdout.write(`queue_pressure ${JSON.stringify({ waitsMs: waits, overtakes, servedBy: served })}\n`);

    // The tiers shared the fleets the routing matrix gives them: fast and relax one A10G queue, turbo H100.
    assert.deepEqual(served, { fast: { a10g: BASELINE + 8 }, relax: { a10g: 8 }, turbo: { h100: 4 } });
    assert.equal(overtakes, 0, `every fast request started before any relax request: ${JSON.stringify(waits)}`);
    assert.ok(waits.fast.max < waits.relax.max, `fast waited less than relax: ${JSON.stringify(waits)}`);
    assert.ok(
      waits.turbo.max < Math.min(TURBO_SCHEDULE_TO_START_MS, waits.relax.p50),
      `turbo's wait stayed bounded while relax waited: ${JSON.stringify(waits)}`,
    );
    await assertStackStillUp(stack, pidsBefore);
    const figures = countOutcomes((id) => socket.framesFor(id), ids);
    assert.deepEqual([figures.failedWithCode, figures.lost, figures.duplicates], [0, 0, 0]);
    reportExperiment('queue_pressure', { ...figures, recoveryMs });
  });
});
