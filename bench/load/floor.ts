// The floor: bare Temporal workflows (three no-op activities, bench/load/floor-workflow.ts) on the stack's own
// Temporal server, started through the SDK at the same arrival pattern as Atelier's requests, with no gateway, no
// events and no Redis. Whatever Atelier costs beyond it is Atelier's; what it costs itself is Temporal's on this
// machine. Its Worker runs in this process, only while a floor segment runs.
import type { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { FloorActivities, floorWorkflow } from './floor-workflow';
import { settle, type RequestRecord } from './records';

const activities: FloorActivities = {
  safety: () => Promise.resolve(),
  gpu: () => Promise.resolve(),
  upload: () => Promise.resolve(),
};

export class Floor {
  readonly taskQueue = `bench-floor-${randomUUID().slice(0, 8)}`;

  private constructor(
    private readonly client: Client,
    private readonly connection: NativeConnection,
    private readonly bundle: { code: string },
  ) {}

  /** Bundles the floor workflow and connects the Worker side; `client` starts the workflows. */
  static async create(client: Client, address: string): Promise<Floor> {
    // Quiet SDK logs (they would interleave with the progress line), and our own SIGINT handling, not the SDK's.
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('./floor-workflow'),
      logger: new DefaultLogger('WARN'),
    });
    const connection = await NativeConnection.connect({ address });
    return new Floor(client, connection, { code });
  }

  /** Runs a Worker on the floor's task queue while `drive` runs, then shuts it down. */
  async withWorker<T>(drive: () => Promise<T>): Promise<T> {
    const worker = await Worker.create({
      connection: this.connection,
      namespace: this.client.options.namespace,
      taskQueue: this.taskQueue,
      workflowBundle: this.bundle,
      activities,
    });
    return worker.runUntil(drive);
  }

  /**
   * Starts one floor workflow for `record` and settles the record when its result arrives. Accept = the start
   * call's round trip; a result later than `timeoutMs` leaves the record open, which counts as lost.
   */
  submit(record: RequestRecord, timeoutMs: number): void {
    record.sentAt = performance.now();
    const run = async (): Promise<'done'> => {
      const handle = await this.client.workflow.start<typeof floorWorkflow>('floorWorkflow', {
        taskQueue: this.taskQueue,
        workflowId: record.id,
      });
      record.acceptedAt = performance.now();
      record.workflowId = handle.workflowId;
      await handle.result();
      return 'done';
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    Promise.race([run(), timeout]).then(
      (result) => {
        clearTimeout(timer);
        if (result === 'done') settle(record, 'completed', undefined, performance.now());
      },
      (err: unknown) => {
        clearTimeout(timer);
        settle(record, 'failed', err instanceof Error ? err.name : 'ERROR', performance.now());
      },
    );
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}
