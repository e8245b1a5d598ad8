// What the spike profile watches while it runs, every couple of seconds: the backlog of each task queue of the stack's
// region (Temporal's DescribeTaskQueue with stats: the call behind the control worker's atelier_queue_backlog, made
// here directly so the bench samples as often as it needs on any stack), the requests the bench itself has in flight,
// and the readiness (/readyz) of the gateway and of every worker. spike-checks.ts turns the samples into figures.
import type { Connection } from '@temporalio/client';
import { performance } from 'node:perf_hooks';
import { controlTaskQueue, fleetTaskQueues, isGpuType, type GpuType } from '../../core/gpu';
import { describeTaskQueueRequest, type QueueTarget } from '../../workers/region-metrics';
import type { StackFile } from './stack';

/** One DescribeTaskQueue call, named `<queue>/<type>` in the figures. */
export type { QueueTarget };

export interface ProbeSample {
  /** ms since the probes started. */
  readonly atMs: number;
  /** Backlog by `<queue>/<type>`; a queue Temporal did not answer for in time has no entry. */
  readonly backlog: Readonly<Record<string, number>>;
  /** Requests the bench has accepted and without a terminal frame. */
  readonly inFlight: number;
  /** /readyz answered 200 in time, by process name. */
  readonly ready: Readonly<Record<string, boolean>>;
}

export interface ProbeTargets {
  readonly queues: readonly QueueTarget[];
  /** The gateway and every worker, with their /readyz URL. */
  readonly readiness: readonly { readonly name: string; readonly url: string }[];
}

/** Deadline of each probe: a slow answer is as bad as none for a probe taken every 2 s under load. */
const PROBE_TIMEOUT_MS = 5_000;
export const SAMPLE_INTERVAL_MS = 2_000;

export function queueName(target: QueueTarget): string {
  return `${target.taskQueue}/${target.taskType}`;
}

/** The region's control queue (workflow and activity tasks) and the GPU queue of every fleet the stack runs. */
export function probeTargets(file: StackFile): ProbeTargets {
  const region = file.region ?? 'us-west';
  // The launcher's default fleets when the stack file does not say.
  const fleets = (file.env.ATELIER_GPU_TYPES ?? 'a10g,a100,a100-80gb,h100')
    .split(',')
    .map((t) => t.trim())
    .filter((t): t is GpuType => isGpuType(t));
  const control = controlTaskQueue(region);
  const queues: QueueTarget[] = [
    { taskQueue: control, taskType: 'workflow' },
    { taskQueue: control, taskType: 'activity' },
    ...fleets.flatMap((gpuType) =>
      fleetTaskQueues(region, gpuType).map((taskQueue) => ({ taskQueue, taskType: 'activity' as const })),
    ),
  ];
  // Workers serve /readyz beside the /metrics the stack file lists; the gateway at its own HTTP address.
  const gatewayHttp = file.gateway.httpUrl ?? file.gateway.wsUrl.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
  const readiness = file.processes.flatMap((p) => {
    const metricsUrl = p.metricsUrl;
    if (p.name === 'gateway') return [{ name: p.name, url: `${gatewayHttp}/readyz` }];
    if (!p.name.includes('worker') || !metricsUrl) return [];
    return [{ name: p.name, url: metricsUrl.replace(/\/metrics$/, '/readyz') }];
  });
  return { queues, readiness };
}

async function backlogOf(connection: Connection, namespace: string, target: QueueTarget): Promise<number> {
  const response = await connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
    connection.workflowService.describeTaskQueue(describeTaskQueueRequest(namespace, target)),
  );
  return Number(response.stats?.approximateBacklogCount ?? 0);
}

export async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Every probed process's readiness now, by name. */
export async function readinessNow(targets: ProbeTargets): Promise<Record<string, boolean>> {
  const answers = await Promise.all(targets.readiness.map(async (t) => [t.name, await isReady(t.url)] as const));
  return Object.fromEntries(answers);
}

/** Whether each process of the stack file still runs under the pid it had when the run began. */
export function processesAlive(file: StackFile): Record<string, boolean> {
  return Object.fromEntries(
    file.processes.map((p) => {
      try {
        process.kill(p.pid, 0);
        return [p.name, true];
      } catch {
        return [p.name, false];
      }
    }),
  );
}

/** Samples every SAMPLE_INTERVAL_MS from start() until stop(); one sample at a time, never piling up. */
export class SpikeProbes {
  readonly samples: ProbeSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private readonly started = performance.now();

  constructor(
    private readonly connection: Connection,
    private readonly namespace: string,
    readonly targets: ProbeTargets,
    private readonly inFlight: () => number,
  ) {}

  start(): void {
    const tick = (): void => {
      this.sampling ??= this.sampleOnce().finally(() => (this.sampling = undefined));
    };
    tick();
    this.timer = setInterval(tick, SAMPLE_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sampling;
  }

  private async sampleOnce(): Promise<void> {
    const atMs = Math.round(performance.now() - this.started);
    const inFlight = this.inFlight();
    const [backlogs, ready] = await Promise.all([
      Promise.allSettled(this.targets.queues.map((q) => backlogOf(this.connection, this.namespace, q))),
      readinessNow(this.targets),
    ]);
    const backlog: Record<string, number> = {};
    backlogs.forEach((result, i) => {
      const target = this.targets.queues[i];
      if (target && result.status === 'fulfilled') backlog[queueName(target)] = result.value;
    });
    this.samples.push({ atMs, backlog, inFlight, ready });
  }
}
