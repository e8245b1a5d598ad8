// The region's queue metrics, sampled by the control worker of the region rather than by every gateway (one process
// per region asks Temporal, whatever the number of gateways): each task queue's backlog from DescribeTaskQueue with
// stats (approximate count of tasks waiting and age of the oldest), for `<region>.control` (workflow and activity
// tasks) and every `<region>.gpu-<type>` (activity tasks), and the requests parked in `pending_safety`, counted by a
// visibility query. Autoscaling and alerts read these; a queue Temporal does not answer for has no sample until it does.
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Gauge, Registry } from 'prom-client';
import { GPU_TYPES, controlTaskQueue, fleetTaskQueues } from '../core/gpu';
import { STATUS_SEARCH_VALUE } from '../core/status';
import type { Logger } from '../runtime/logger';
import { atelierGauge } from '../runtime/metrics';
import type { QueueSnapshot } from '../core/capacity';

const { TaskQueueKind, TaskQueueType } = temporal.api.enums.v1;

/** One DescribeTaskQueue call: a task queue and one of its task types. */
export interface QueueTarget {
  readonly taskQueue: string;
  readonly taskType: 'workflow' | 'activity';
}

export interface RegionSamplerOptions {
  readonly region: string;
  readonly temporalAddress: string;
  readonly namespace: string;
  /** Time between two samples, ms. */
  readonly intervalMs: number;
  readonly log: Logger;
  /** Receives each GPU queue's sample, for the gateways' admission by capacity (runtime/capacity-store.ts). */
  readonly publish?: (taskQueue: string, snapshot: QueueSnapshot) => Promise<void>;
}

/**
 * A GPU queue's sample for admission: its backlog by priority key (Temporal's per-priority statistics; a server that
 * gives none has its whole backlog counted at the top priority, ahead of every tier, which errs towards shedding
 * later tiers, never towards admitting work it cannot serve) and its dispatch rate.
 */
export function queueSnapshot(
  stats: temporal.api.taskqueue.v1.ITaskQueueStats | null | undefined,
  byPriority: Record<string, temporal.api.taskqueue.v1.ITaskQueueStats> | null | undefined,
  at: number,
): QueueSnapshot {
  const backlogByPriority: Record<string, number> = {};
  for (const [key, s] of Object.entries(byPriority ?? {})) backlogByPriority[key] = toNumber(s.approximateBacklogCount);
  if (Object.keys(backlogByPriority).length === 0) backlogByPriority['1'] = toNumber(stats?.approximateBacklogCount);
  return { at, backlogByPriority, dispatchPerSecond: Number(stats?.tasksDispatchRate ?? 0) };
}

/** Deadline of each call to Temporal, ms: a slow frontend delays one sample, never the next. */
const CALL_TIMEOUT_MS = 3_000;

/** The task queues of a region and their task types: workflows and activities on control, activities on the GPUs. */
/** The DescribeTaskQueue request for one target, with its statistics (backlog, rates). */
export function describeTaskQueueRequest(namespace: string, target: QueueTarget) {
  return {
    namespace,
    taskQueue: { name: target.taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType:
      target.taskType === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportStats: true,
  };
}

export function regionQueueTargets(region: string): QueueTarget[] {
  const control = controlTaskQueue(region);
  return [
    { taskQueue: control, taskType: 'workflow' },
    { taskQueue: control, taskType: 'activity' },
    ...GPU_TYPES.flatMap((gpuType) =>
      fleetTaskQueues(region, gpuType).map((taskQueue) => ({ taskQueue, taskType: 'activity' as const })),
    ),
  ];
}

/** Long (protobufjs), number or absent, as a number. */
function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value && typeof (value as { toNumber?: unknown }).toNumber === 'function') {
    return (value as { toNumber(): number }).toNumber();
  }
  return Number(value ?? 0);
}

export class RegionQueueSampler {
  private readonly backlog: Gauge<'task_queue' | 'task_type'>;
  private readonly backlogAge: Gauge<'task_queue' | 'task_type'>;
  private readonly pendingSafety: Gauge;
  private readonly connection: Connection;
  private readonly targets: QueueTarget[];
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private failing = false;

  constructor(
    registry: Registry,
    private readonly options: RegionSamplerOptions,
  ) {
    const labelNames = ['task_queue', 'task_type'] as const;
    this.backlog = atelierGauge(registry, {
      name: 'atelier_queue_backlog',
      help: "Tasks waiting in the region's task queue (Temporal's approximate backlog count), sampled",
      labelNames,
    });
    this.backlogAge = atelierGauge(registry, {
      name: 'atelier_queue_backlog_age_seconds',
      help: "Age of the oldest task waiting in the region's task queue (Temporal's approximate), seconds",
      labelNames,
    });
    this.pendingSafety = atelierGauge(registry, {
      name: 'atelier_requests_pending_safety',
      help: 'Running requests of the region parked in pending_safety while the safety screen is down (visibility)',
    });
    // No sample until the first count: an unlabelled gauge would otherwise read 0 before anyone asked.
    this.pendingSafety.remove();
    this.targets = regionQueueTargets(options.region);
    this.connection = Connection.lazy({ address: options.temporalAddress });
  }

  /** Samples now, then every `intervalMs`. */
  start(): void {
    const tick = (): void => {
      this.sampling ??= this.sampleOnce().finally(() => (this.sampling = undefined));
    };
    tick();
    this.timer = setInterval(tick, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sampling;
    await this.connection.close().catch(() => undefined);
  }

  /** One sample of every queue and of the pending_safety count; what fails loses its sample until it answers. */
  async sampleOnce(): Promise<void> {
    const results = await Promise.allSettled([
      ...this.targets.map((target) => this.sampleQueue(target)),
      this.samplePendingSafety(),
    ]);
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    if (failures.length > 0 && !this.failing) {
      this.options.log.warn(
        { failures: failures.slice(0, 3) },
        'queue metrics: Temporal did not answer; samples dropped',
      );
    } else if (failures.length === 0 && this.failing) {
      this.options.log.info('queue metrics: Temporal answers again');
    }
    this.failing = failures.length > 0;
  }

  private async sampleQueue(target: QueueTarget): Promise<void> {
    const labels = { task_queue: target.taskQueue, task_type: target.taskType };
    try {
      const response = await this.call(() =>
        this.connection.workflowService.describeTaskQueue(describeTaskQueueRequest(this.options.namespace, target)),
      );
      const stats = response.stats;
      // GPU queues (activities) and the control queue's workflow tasks: what admission by capacity reads.
      const admissionQueue = target.taskQueue.includes('.gpu-') || target.taskType === 'workflow';
      if (this.options.publish && admissionQueue) {
        const snapshot = queueSnapshot(stats, response.statsByPriorityKey, Date.now());
        await this.options.publish(target.taskQueue, snapshot);
      }
      const age = stats?.approximateBacklogAge;
      this.backlog.set(labels, toNumber(stats?.approximateBacklogCount));
      this.backlogAge.set(labels, toNumber(age?.seconds) + (age?.nanos ?? 0) / 1e9);
    } catch (err) {
      this.backlog.remove(labels);
      this.backlogAge.remove(labels);
      throw new Error(`${target.taskQueue} (${target.taskType}): ${(err as Error).message}`, { cause: err });
    }
  }

  private async samplePendingSafety(): Promise<void> {
    const query =
      `GenerationStatus="${STATUS_SEARCH_VALUE.pending_safety}" AND ExecutionStatus="Running" AND ` +
      `Region="${this.options.region}"`;
    try {
      const response = await this.call(() =>
        this.connection.workflowService.countWorkflowExecutions({ namespace: this.options.namespace, query }),
      );
      this.pendingSafety.set(toNumber(response.count));
    } catch (err) {
      this.pendingSafety.remove();
      throw new Error(`pending_safety count: ${(err as Error).message}`, { cause: err });
    }
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    return this.connection.withDeadline(Date.now() + CALL_TIMEOUT_MS, fn);
  }
}
