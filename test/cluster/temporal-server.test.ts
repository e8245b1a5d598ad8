// The Temporal cluster of `npm run stack:cluster`: temporal-server built from go.temporal.io/server on a private
// PostgreSQL from Debian's packages, with SQL visibility. A generation request runs through the production workers
// against it, operators find it by Atelier's search attributes, the rows are in PostgreSQL, and both stop cleanly.
//
// The first run builds temporal-server with `go install` (minutes): see resolveTemporalServer. Later runs find it in
// the cache and take about a minute.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { TIER_PRIORITY_KEY } from '../../core/tiers';
import { portAcceptsConnections } from '../../infra/ports';
import { resolveTemporalServer, TEMPORAL_SERVER_VERSION } from '../../infra/provision-temporal-server';
import { startTemporalCluster, type TemporalCluster } from '../../infra/temporal-server';
import { createLogger } from '../../runtime/logger';
import type { GenerationResult } from '../../workflows';
import { eventually } from '../helpers/eventually';
import { startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

const log = createLogger('test.temporal-server');

describe('Temporal server on PostgreSQL', () => {
  let dataDir: string;
  let cluster: TemporalCluster;
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  /** Set by the last test, which stops everything itself. */
  let stopped = false;

  before(async () => {
    const binaries = await resolveTemporalServer({ log: (line) => log.info(line) });
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-temporal-cluster-'));
    // As root, PostgreSQL runs as the postgres user, which must be able to pass through this folder.
    await fs.chmod(dataDir, 0o755);
    cluster = await startTemporalCluster({ dataDir, log, binaries });
    env = await TestWorkflowEnvironment.createFromExistingServer({
      address: cluster.address,
      namespace: cluster.namespace,
    });
    h = await startGenerationHarness(env, { gpus: { a10g: {} } });
  });

  after(async () => {
    if (!stopped) {
      await h?.stop();
      await env?.teardown();
    }
    await cluster?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('is the pinned Temporal Server, not the dev server, with every Atelier search attribute', async () => {
    const connection = await Connection.connect({ address: cluster.address });
    try {
      const info = await connection.workflowService.getSystemInfo({});
      assert.equal(info.serverVersion, TEMPORAL_SERVER_VERSION);
      const listed = await connection.operatorService.listSearchAttributes({ namespace: cluster.namespace });
      for (const key of SEARCH_ATTRIBUTES) assert.ok(listed.customAttributes[key.name], `${key.name} is registered`);
    } finally {
      await connection.close();
    }
    const databases = await cluster.postgres.query('SELECT datname FROM pg_database ORDER BY datname');
    assert.deepEqual(
      databases.split('\n').filter((name) => name.startsWith('temporal')),
      ['temporal', 'temporal_visibility'],
    );
  });

  test('runs a generation request and finds it by custom search attributes through SQL visibility', async () => {
    const req = h.request({ tier: 'fast' });
    const handle = await h.start(req);
    const result: GenerationResult = await handle.result();
    assert.equal(result.gpuType, 'a10g');
    assert.equal(result.images.length, 1);
    const events = await h.events(req);
    assert.equal(events.at(-1)?.type, 'completed');

    // Visibility is written asynchronously (the history service's visibility queue), so poll.
    const query = `GenerationStatus = "Completed" AND Region = "${h.region}" AND Tier = "fast" AND GpuType = "a10g"`;
    let ids: string[] = [];
    await eventually(
      async () => {
        ids = [];
        for await (const info of env.client.workflow.list({ query })) ids.push(info.workflowId);
        return ids.length > 0;
      },
      15_000,
      'the completed request in visibility',
    );
    assert.deepEqual(ids, [handle.workflowId]);
    assert.equal((await env.client.workflow.count(query)).count, 1);

    // The row is PostgreSQL's: SQL visibility keeps custom attributes in typed columns of executions_visibility.
    const row = await cluster.postgres.query(
      `SELECT status FROM executions_visibility WHERE workflow_id = '${handle.workflowId}'`,
      'temporal_visibility',
    );
    assert.equal(row, '2', 'WORKFLOW_EXECUTION_STATUS_COMPLETED');
  });

  test('honours task-queue priority, which the dynamic config file switches on', async () => {
    const taskQueue = `priority-${Date.now()}`;
    const connection = env.connection;
    // Queued with nobody polling, in the worst order: relax first, turbo last.
    for (const tier of ['relax', 'fast', 'turbo'] as const) {
      await env.client.workflow.start('generateImage', {
        taskQueue,
        workflowId: `${taskQueue}-${tier}`,
        priority: { priorityKey: TIER_PRIORITY_KEY[tier] },
      });
    }
    // A start hands its first task to matching asynchronously: wait until all three are queued.
    await eventually(
      async () => {
        const described = await connection.workflowService.describeTaskQueue({
          namespace: cluster.namespace,
          taskQueue: { name: taskQueue },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          reportStats: true,
        });
        return Number(described.stats?.approximateBacklogCount ?? 0) >= 3;
      },
      15_000,
      'three queued workflow tasks',
    );
    const order: (string | null | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      const task = await connection.withDeadline(Date.now() + 10_000, () =>
        connection.workflowService.pollWorkflowTaskQueue({
          namespace: cluster.namespace,
          taskQueue: { name: taskQueue },
          identity: 'priority-test',
        }),
      );
      order.push(task.workflowExecution?.workflowId);
    }
    assert.deepEqual(
      order,
      ['turbo', 'fast', 'relax'].map((tier) => `${taskQueue}-${tier}`),
    );
  });

  test('stops the server, then PostgreSQL, without SIGKILL', async () => {
    stopped = true;
    await h.stop();
    await env.teardown();
    const { address, postgres } = cluster;
    await cluster.stop();
    const [server, database] = await Promise.all([cluster.server.exited, postgres.exited]);
    assert.notEqual(server.signal, 'SIGKILL', 'temporal-server left within its grace period');
    assert.deepEqual(database, { code: 0, signal: null }, 'postgres shut down cleanly');
    const [host, port] = address.split(':') as [string, string];
    assert.equal(await portAcceptsConnections(host, Number(port)), false);
  });
});
