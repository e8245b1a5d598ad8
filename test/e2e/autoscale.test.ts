// Autoscaling on the local stack (issue 13): `ATELIER_AUTOSCALER=on npm start` with a small policy, and bench:load's
// step pattern (low, high, low) of SDXL requests on the A10G fleet. The autoscaler workflow in the control worker sees
// the fleet's queue grow past the policy's threshold and asks for more workers; the launcher starts them (they warm up,
// then poll); once the load is low and the fleet idle, it asks for fewer and the launcher drains them (SIGTERM: they
// finish what they hold, then exit). Every request is answered exactly once: no request is lost to a scale event.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { arrivalSchedule, runArrivals } from '../../bench/load/arrivals';
import { startStack, type StackHandle } from '../../infra/test-stack';
import { autoscalerQuery, autoscalerWorkflowId } from '../../workflows/autoscaler';
import { within } from '../helpers/deadline';
import { eventually } from '../helpers/eventually';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';
import { countOutcomes } from '../chaos/harness';

/** A policy for a one-fleet laptop: up by 1 when 3 requests wait for 2 s, down by 1 when idle for 5 s. */
const POLICY = {
  scaleUp: {
    turboQueueDepth: { threshold: 3, forMs: 2_000 },
    fastQueueDepth: { threshold: 3, forMs: 2_000 },
    relaxQueueDepth: { threshold: 50, forMs: 2_000 },
    fastAvgWaitS: { threshold: 30, forMs: 2_000 },
    relaxAvgWaitS: { threshold: 300, forMs: 2_000 },
    predictedOverCapacity: 0.8,
  },
  scaleDown: {
    allQueuesBelow: { threshold: 1, forMs: 5_000 },
    gpuUtilizationBelow: { threshold: 0.3, forMs: 5_000 },
    predictedUnderCapacity: 0.5,
  },
  constraints: {
    minWorkers: 1,
    maxWorkers: 3,
    cooldownUpMs: 3_000,
    cooldownDownMs: 5_000,
    scaleUpIncrement: 1,
    scaleDownIncrement: 1,
  },
  tierMinimums: { turbo: 0, fast: 1, relax: 0 },
  schedule: [{ at: '00:00', share: 0 }],
};

const a10gWorkers = (stack: StackHandle): string[] =>
  stack
    .children()
    .map((c) => c.name)
    .filter((name) => name.startsWith('gpu-worker[a10g]'));

describe('local autoscaling under a step load', () => {
  let stack: StackHandle;
  let socket: TestSocket;

  before(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'atelier-autoscale-'));
    const policyFile = path.join(dir, 'policy.json');
    await writeFile(policyFile, JSON.stringify(POLICY));
    stack = await startStack({
      gpuTypes: ['a10g'],
      autoscaler: true,
      autoscaleLocalMax: 3,
      env: {
        // About half a second per request on one worker: 6 a second queue up, 0.5 a second do not.
        ATELIER_SIM_SPEEDUP: '2',
        LOG_LEVEL: 'warn',
        ATELIER_AUTOSCALE_POLICY: policyFile,
        ATELIER_AUTOSCALE_INTERVAL_MS: '1000',
        ATELIER_CONTROL_QUEUE_METRICS_MS: '1000',
        ATELIER_RATE_LIMIT_PER_MINUTE: '100000',
        ATELIER_MAX_IN_FLIGHT_PER_USER: '100000',
      },
    } as Parameters<typeof startStack>[0]);
    socket = await connectTestSocket(stack.gatewayWsUrl, stack.apiKey);
  });
  after(async () => {
    await within('the test socket', 10_000, socket?.close() ?? Promise.resolve());
    await within('the stack', 90_000, stack?.stop() ?? Promise.resolve());
  });

  test('scales the A10G fleet up under the high step and drains it back down after, losing nothing', async () => {
    assert.deepEqual(a10gWorkers(stack), ['gpu-worker[a10g]']);
    const ids: string[] = [];
    let most = 1;
    const watch = setInterval(() => (most = Math.max(most, a10gWorkers(stack).length)), 200);
    try {
      await runArrivals(arrivalSchedule({ kind: 'step', rates: [0.5, 6, 0.5], stepSeconds: 15 }), (i) => {
        const requestId = `autoscale-${Date.now()}-${i}`;
        ids.push(requestId);
        socket.send({
          type: 'generate',
          requestId,
          prompt: `a harbour at dusk, variation ${i}`,
          model: 'sdxl',
          tier: 'fast',
          width: 512,
          height: 512,
          steps: 10,
        });
      });
      await Promise.allSettled(ids.map((id) => socket.terminal(id, 180_000)));
      assert.ok(most >= 2, `the fleet grew under the high step (at most ${most} workers)`);
      await eventually(async () => a10gWorkers(stack).length === 1, 150_000, 'the fleet drained back to one worker');
    } finally {
      clearInterval(watch);
    }
    const figures = countOutcomes((id) => socket.framesFor(id), ids);
    assert.deepEqual(
      { lost: figures.lost, duplicates: figures.duplicates, completedOnce: figures.completedOnce },
      { lost: 0, duplicates: 0, completedOnce: ids.length },
    );

    const connection = await Connection.connect({ address: stack.temporalAddress });
    try {
      const client = new Client({ connection, namespace: stack.temporalNamespace });
      const view = await client.workflow.getHandle(autoscalerWorkflowId('us-west')).query(autoscalerQuery);
      const a10g = view.recentSteps.filter((s) => s.gpuType === 'a10g');
      assert.ok(
        a10g.some((s) => s.action === 'up' && /fast queue/.test(s.reason)),
        JSON.stringify(a10g),
      );
      assert.ok(
        // Idle: the duty cycle, or the forecast from it (busy GPUs under half the fleet), takes it down.
        a10g.some((s) => s.action === 'down' && /utilization|forecast [\d.]+ workers </.test(s.reason)),
        JSON.stringify(a10g),
      );
      // The control worker counts the steps and shows the driver's desired replicas on /metrics.
      const metricsUrl = stack.metricsUrls()['control-worker'];
      assert.ok(metricsUrl, 'the control worker serves /metrics');
      const text = await (await fetch(metricsUrl)).text();
      const sample = (name: string, labels: string): number =>
        Number(new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? -1);
      assert.equal(
        sample('atelier_autoscaler_steps_total', 'gpu_type="a10g",action="up"'),
        a10g.filter((s) => s.action === 'up').length,
      );
      assert.equal(sample('atelier_autoscaler_desired_replicas', 'gpu_type="a10g"'), 1);
      process.stdout.write(
        `autoscale: ${ids.length} requests, at most ${most} a10g workers; steps ${a10g.map((s) => `${s.action} ${s.from}->${s.to}`).join(', ')}\n`,
      );
    } finally {
      await connection.close();
    }
  });
});
