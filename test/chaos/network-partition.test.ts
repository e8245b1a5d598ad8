// Chaos, seed 001 `network_partition` (issue 10): a GPU worker is cut off from Temporal and Redis while it
// generates, as if its availability zone were isolated. Its links to both run through toxiproxy (infra/toxiproxy.ts),
// and the cut drops every byte without closing anything: the worker learns of it only from its own timeouts, and
// Temporal only from the heartbeats that stop. Within the 30 s heartbeat timeout the workflow retries the request on
// the stack's own worker of the fleet, on the near side of the partition (routed around it). Every accepted request
// must reach its client exactly once, completed: lost = 0, duplicate terminals = 0, none failed. Once the partition
// heals, the worker that was cut off polls again and completes requests.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { gpuTaskQueue } from '../../core/gpu';
import { generationWorkflowId } from '../../core/request';
import { childLifelineArgs, spawnService, type ServiceProcess } from '../../infra/processes';
import { childEnvironment, ENTRY_POINTS } from '../../infra/stack-children';
import { repoRoot, type StackHandle } from '../../infra/test-stack';
import { startToxiproxy, type ToxiproxyClient } from '../../infra/toxiproxy';
import type { GenerationResult } from '../../workflows/generate-image';
import { assertEachCompletedOnce, countOutcomes, reportExperiment, sendAcceptedBurst, useChaosStack } from './harness';

/** Fast-tier SDXL requests (what the burst sends) run on this fleet (core/routing.ts: sdxl-standard). */
const FLEET = 'a10g';
const PARTITIONED_WORKER = 'partitioned-a10g';
const USER = 'partition-user';
/** The proxies the partitioned worker reaches Temporal and Redis through. */
const LINKS = ['temporal', 'redis'] as const;

/** Every process of the stack gets these, and so does the partitioned worker. */
const STACK_ENV = {
  // One request at a time per worker, as on one GPU, and about 7 s each: while the stack's own a10g worker holds one
  // request of the burst, the next can only go to the partitioned worker, and the cut lands mid-generation however
  // slowly this machine answers the test's look-ups.
  ATELIER_GPU_SLOTS: '1',
  ATELIER_SIM_SPEEDUP: '0.1',
  // Only the simulated GPU serves SDXL; ONNX would only cost CPU here.
  ATELIER_INFERENCE_BACKENDS: 'simulated',
  // A user of our own, so the test knows each request's workflow id (gen:<user>:<requestId>).
  ATELIER_API_KEYS: `partition-key:${USER}`,
};

/** A Temporal worker's identity as the SDK sets it by default: `<pid>@<hostname>`. */
function sdkIdentity(pid: number | undefined): string {
  assert.ok(pid, 'the partitioned worker has a pid');
  return `${pid}@${os.hostname()}`;
}

/** One extra GPU worker of the fleet, set up as the stack's own, but reaching Temporal and Redis through toxiproxy. */
async function launchPartitionedWorker(stack: StackHandle, proxies: ToxiproxyClient): Promise<ServiceProcess> {
  const temporalProxy = await proxies.createProxy('temporal', stack.temporalAddress);
  const redisUrl = new URL(stack.redisUrl);
  const redisProxy = await proxies.createProxy('redis', `${redisUrl.hostname}:${redisUrl.port || '6379'}`);
  redisUrl.host = redisProxy.listen;
  const root = repoRoot();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...childEnvironment(stack.options, stack.dataDir),
    ...STACK_ENV,
    TEMPORAL_ADDRESS: temporalProxy.listen,
    REDIS_URL: redisUrl.toString(),
    ATELIER_GPU_TYPE: FLEET,
    ATELIER_WORKER_ID: PARTITIONED_WORKER,
    // Its reconnection warnings go into the output tail that failures print.
    LOG_LEVEL: 'info',
  };
  // Set by `node --test` for its own subprocesses; this child is a server, not a test file.
  delete env.NODE_TEST_CONTEXT;
  return spawnService({
    name: 'gpu-worker[partitioned]',
    command: process.execPath,
    args: [...childLifelineArgs(root), path.join(root, ENTRY_POINTS.gpuWorker.script)],
    env,
    cwd: root,
    onLine: (line) => {
      if (process.env.ATELIER_STACK_LOGS === '1') process.stderr.write(`gpu-worker[partitioned] | ${line}\n`);
    },
    ownProcessGroup: true,
  });
}

/** Temporal look-ups of the experiment: who polls the fleet's queue, who holds a request, who completed it. */
class Observer {
  constructor(
    private readonly client: Client,
    private readonly stack: StackHandle,
    private readonly worker: ServiceProcess,
  ) {}

  private check(what: string, timeoutMs: number): { pending(): boolean; fail(): never } {
    const deadline = Date.now() + timeoutMs;
    return {
      pending: () => {
        assert.ok(!this.worker.hasExited, `the partitioned worker exited:\n${this.worker.outputTail(40)}`);
        return Date.now() < deadline;
      },
      fail: () => assert.fail(`${what} within ${timeoutMs} ms; the worker's output:\n${this.worker.outputTail(40)}`),
    };
  }

  /** Waits until the partitioned worker has polled the fleet's queue after `sinceMs` (epoch ms). */
  async waitForPoll(sinceMs: number, timeoutMs: number): Promise<void> {
    const identity = sdkIdentity(this.worker.process.pid);
    const taskQueue = gpuTaskQueue(this.stack.options.region, FLEET);
    const check = this.check(`the partitioned worker did not poll ${taskQueue}`, timeoutMs);
    while (check.pending()) {
      const described = await this.client.connection.workflowService.describeTaskQueue({
        namespace: this.stack.temporalNamespace,
        taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      const poller = described.pollers?.find((p) => p.identity === identity);
      if (poller && Number(poller.lastAccessTime?.seconds ?? 0) * 1000 >= sinceMs - 1000) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    check.fail();
  }

  /** The first of `requestIds` whose GPU step the partitioned worker has started. */
  async requestHeldByWorker(requestIds: readonly string[], timeoutMs: number): Promise<string> {
    const identity = sdkIdentity(this.worker.process.pid);
    const check = this.check('the partitioned worker took none of the burst', timeoutMs);
    while (check.pending()) {
      for (const id of requestIds) {
        const { raw } = await this.client.workflow.getHandle(generationWorkflowId(USER, id)).describe();
        const held = raw.pendingActivities?.some(
          (a) => a.activityType?.name === 'runInference' && a.lastWorkerIdentity === identity,
        );
        if (held) return id;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return check.fail();
  }

  /** The worker id that completed the request's inference. */
  async completedBy(requestId: string): Promise<string> {
    const result = (await this.client.workflow
      .getHandle(generationWorkflowId(USER, requestId))
      .result()) as GenerationResult;
    return result.workerId;
  }

  /** How many of the request's GPU attempts Temporal timed out (a worker that went silent). */
  async timedOutAttempts(requestId: string): Promise<number> {
    const history = await this.client.workflow.getHandle(generationWorkflowId(USER, requestId)).fetchHistory();
    return (history.events ?? []).filter((e) => e.activityTaskTimedOutEventAttributes).length;
  }
}

describe('network_partition: cut a GPU worker off from Temporal and Redis mid-inference', () => {
  const chaos = useChaosStack(STACK_ENV);

  test('requests are routed around the partition, each completes once, and the worker rejoins when it heals', async (t) => {
    const { stack, socket } = chaos;
    // Undone last first: the worker goes before the proxies it talks through.
    const cleanups: (() => Promise<unknown>)[] = [];
    t.after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });
    const connection = await Connection.connect({ address: stack.temporalAddress });
    cleanups.push(() => connection.close());
    const toxiproxy = await startToxiproxy();
    cleanups.push(() => toxiproxy.stop());
    const launchedAt = Date.now();
    const worker = await launchPartitionedWorker(stack, toxiproxy.client);
    cleanups.push(() => worker.stop({ graceMs: 10_000 }));
    const observe = new Observer(new Client({ connection, namespace: stack.temporalNamespace }), stack, worker);
    await observe.waitForPoll(launchedAt, 120_000);

    const ids = await sendAcceptedBurst(socket, 'partition', 4);
    const victim = await observe.requestHeldByWorker(ids, 60_000);
    const cutAt = Date.now();
    for (const link of LINKS) await toxiproxy.client.partition(link);

    await assertEachCompletedOnce(socket, ids);
    // Cut -> every request answered: Temporal noticing the silence (the 30 s heartbeat timeout), the retry's backoff,
    // and the retried generation on the near side.
    const recoveryMs = Date.now() - cutAt;
    assert.ok((await observe.timedOutAttempts(victim)) >= 1, `${victim}: Temporal timed out the cut-off attempt`);
    const victimWorker = await observe.completedBy(victim);
    assert.notEqual(victimWorker, PARTITIONED_WORKER, `${victim} was routed around the partition`);

    const healedAt = Date.now();
    for (const link of LINKS) await toxiproxy.client.heal(link);
    await observe.waitForPoll(healedAt, 120_000);
    const afterHeal = await sendAcceptedBurst(socket, 'healed', 4);
    await assertEachCompletedOnce(socket, afterHeal);
    const workers = await Promise.all(afterHeal.map((id) => observe.completedBy(id)));
    assert.ok(
      workers.includes(PARTITIONED_WORKER),
      `the healed worker completes requests again: ${workers.join(', ')}`,
    );

    reportExperiment('network_partition', { ...countOutcomes((id) => socket.framesFor(id), ids), recoveryMs });
  });
});
