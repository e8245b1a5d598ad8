// The autoscaler workflow (issue 13) on a real Temporal dev server with the production bundle and its real activities
// over a real Redis: the region's queue samples are written where the control worker's sampler writes them, the GPU
// workers' announcements where they announce, and the local driver's desired replicas are read back. A fast queue
// past a small policy's threshold for its duration scales the fleet up in steps of its increment, no closer than its
// cooldown; once the queue is empty and the fleet idle it comes down to its minimum. Every step's reason is in the
// history (applyScale's input) and in the `autoscaler` query. ATELIER_RECORD_HISTORY=1 writes the history to the
// replay corpus.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createAutoscalerActivities } from '../../activities/autoscaler';
import { SEED_001_POLICY, type AutoscalePolicy } from '../../core/autoscale-policy';
import { controlTaskQueue, gpuTaskQueue } from '../../core/gpu';
import { parseRegionCatalogue } from '../../core/regions';
import { CapacityStore } from '../../runtime/capacity-store';
import { RedisDesiredReplicas } from '../../runtime/scale-driver';
import { WorkerControlStore } from '../../runtime/worker-control';
import { autoscaler, autoscalerQuery, autoscalerWorkflowId } from '../../workflows/autoscaler';
import { historyToJsonText } from '../replay/history-json';
import { eventually } from '../helpers/eventually';
import { testRedis, type TestRedis } from '../helpers/redis';
import { createTemporalTestEnv, testWorkflowBundle } from '../helpers/temporal';

const REGION = 'as-test';
/** Seed 001's policy with small numbers: one a10g fleet of 6 GPUs, minimum 1, steps of 2 up and 1 down. */
const POLICY: AutoscalePolicy = {
  ...SEED_001_POLICY,
  scaleUp: { ...SEED_001_POLICY.scaleUp, fastQueueDepth: { threshold: 5, forMs: 1_000 } },
  scaleDown: {
    ...SEED_001_POLICY.scaleDown,
    allQueuesBelow: { threshold: 2, forMs: 1_000 },
    gpuUtilizationBelow: { threshold: 0.3, forMs: 1_000 },
  },
  constraints: {
    minWorkers: 1,
    maxWorkers: 6,
    cooldownUpMs: 1_500,
    cooldownDownMs: 1_500,
    scaleUpIncrement: 2,
    scaleDownIncrement: 1,
  },
  tierMinimums: { turbo: 0, fast: 1, relax: 0 },
  schedule: [{ at: '00:00', share: 0 }],
};

describe('the autoscaler workflow (issue 13)', () => {
  let env: TestWorkflowEnvironment;
  let redis: TestRedis;
  let worker: Worker;
  let running: Promise<void>;

  before(async () => {
    env = await createTemporalTestEnv();
    redis = await testRedis();
    const catalogue = parseRegionCatalogue({
      regions: [{ name: REGION, role: 'primary', models: ['sdxl'], fleets: { a10g: 6 }, neighbours: [] }],
    });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: controlTaskQueue(REGION),
      workflowBundle: await testWorkflowBundle(),
      activities: createAutoscalerActivities({
        capacity: new CapacityStore(redis.redis, redis.prefix),
        workers: new WorkerControlStore(redis.redis, redis.prefix),
        driver: new RedisDesiredReplicas(redis.redis, redis.prefix),
        catalogue: () => catalogue,
      }),
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await redis?.cleanup();
    await env?.teardown();
  });

  /** What the control worker's sampler would publish for the fleet's queue, and its one worker's announcement. */
  async function observe(backlog: number, dutyCycle: number): Promise<void> {
    const capacity = new CapacityStore(redis.redis, redis.prefix);
    await capacity.publish(gpuTaskQueue(REGION, 'a10g'), {
      at: Date.now(),
      backlogByPriority: { '3': backlog },
      dispatchPerSecond: 1,
    });
    await new WorkerControlStore(redis.redis, redis.prefix).announce({
      workerId: 'w-1',
      region: REGION,
      gpuType: 'a10g',
      state: 'serving',
      holds: {},
      breaker: 'CLOSED',
      ready: true,
      dutyCycle,
      announcedAt: Date.now(),
    });
  }

  const desired = async (): Promise<number | undefined> =>
    (await new RedisDesiredReplicas(redis.redis, redis.prefix).replicas(REGION)).a10g;

  test('scales the fleet up under a long queue, by its increment and cooldown, and back to its minimum when idle', async () => {
    await observe(0, 0.5);
    const handle = await env.client.workflow.start(autoscaler, {
      workflowId: autoscalerWorkflowId(REGION),
      taskQueue: controlTaskQueue(REGION),
      args: [{ region: REGION, policy: POLICY, intervalMs: 250 }],
    });
    // Below the fleet minimum of 1 (no replicas asked for yet, one worker announced): held at 1, no step.
    await eventually(async () => (await handle.query(autoscalerQuery)).rounds >= 2, 20_000, 'two rounds');
    assert.equal(await desired(), undefined, 'one worker, minimum 1: nothing to ask for');

    const rising: number[] = [];
    await observe(40, 0.95);
    await eventually(
      async () => {
        await observe(40, 0.95);
        const now = await desired();
        if (now !== undefined && rising.at(-1) !== now) rising.push(now);
        return now === 6;
      },
      30_000,
      'the fleet at its maximum of 6',
    );
    assert.deepEqual(rising, [3, 5, 6], '+2 per step, capped at the pool maximum');

    await eventually(
      async () => {
        await observe(0, 0.05);
        return (await desired()) === 1;
      },
      30_000,
      'the idle fleet back at its minimum',
    );
    const view = await handle.query(autoscalerQuery);
    const steps = view.recentSteps.map((s) => [s.action, s.from, s.to]);
    assert.deepEqual(steps, [
      ['up', 1, 3],
      ['up', 3, 5],
      ['up', 5, 6],
      ['down', 6, 5],
      ['down', 5, 4],
      ['down', 4, 3],
      ['down', 3, 2],
      ['down', 2, 1],
    ]);
    for (let i = 1; i < view.recentSteps.length; i++) {
      const gap = (view.recentSteps[i]?.at ?? 0) - (view.recentSteps[i - 1]?.at ?? 0);
      assert.ok(gap >= 1_500, `steps ${i - 1} and ${i} are ${gap} ms apart: no step inside a cooldown`);
    }
    // The forecast fires at once (one worker at 95% duty, forecast above 0.8 of 1); the queue after its 1 s.
    assert.match(view.recentSteps[0]?.reason ?? '', /forecast 0\.\d+ workers > 0\.8 x 1/);
    assert.ok(
      view.recentSteps.slice(1, 3).some((s) => /fast queue 40 > 5/.test(s.reason)),
      'the queue trigger takes the fleet on past what one busy worker forecasts',
    );
    assert.match(view.recentSteps.at(-1)?.reason ?? '', /utilization 5% < 30%/);

    const history = await handle.fetchHistory();
    const applied = (history.events ?? []).filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyScale',
    );
    assert.equal(applied.length, 8, 'one applyScale per step, its decisions (and reasons) in the history');
    await handle.terminate('test over');
    if (process.env.ATELIER_RECORD_HISTORY === '1') {
      const dir = path.join(__dirname, '..', 'replay', 'histories', 'autoscaler-v1');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'autoscaler.json'), historyToJsonText(await handle.fetchHistory()));
    }
  });
});
