// The local Temporal: the real dev server binary, started with Atelier's search attributes and with task-queue
// priority honoured (a turbo request is dispatched before relax requests queued earlier), persisting to SQLite so
// a restart keeps running workflows, and stopping cleanly.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { TIER_PRIORITY_KEY } from '../../core/tiers';
import { freePort } from '../../infra/ports';
import { resolveTemporalCli } from '../../infra/provision';
import {
  TemporalStartError,
  localTestServerConfig,
  startTemporalDevServer,
  temporalAnswers,
  type TemporalServerHandle,
} from '../../infra/temporal';
import { createLogger } from '../../runtime/logger';

const log = createLogger('test.temporal');
let cliPath: string;
let dataDir: string;
/** One server for the describe block below: starting one costs a couple of seconds on a small machine. */
let server: TemporalServerHandle;

before(async () => {
  cliPath = await resolveTemporalCli({ install: false });
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-temporal-test-'));
});

after(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

async function withClient<T>(address: string, fn: (client: Client, connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address });
  try {
    return await fn(new Client({ connection }), connection);
  } finally {
    await connection.close();
  }
}

/** Takes the next workflow task from `taskQueue` the way a worker would, returning its workflow id. */
async function pollWorkflowId(connection: Connection, taskQueue: string): Promise<string | null | undefined> {
  const task = await connection.withDeadline(Date.now() + 10_000, () =>
    connection.workflowService.pollWorkflowTaskQueue({
      namespace: 'default',
      taskQueue: { name: taskQueue },
      identity: 'priority-test',
    }),
  );
  return task.workflowExecution?.workflowId;
}

/**
 * Waits until `count` workflow tasks wait in the backlog of `taskQueue`. Starting a workflow hands its first task
 * to matching asynchronously, so polling right after the starts could see only some of them.
 */
async function waitForBacklog(connection: Connection, taskQueue: string, count: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  let backlog = 0;
  while (Date.now() < deadline) {
    const described = await connection.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
      reportStats: true,
    });
    backlog = Number(described.stats?.approximateBacklogCount ?? 0);
    if (backlog >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`only ${backlog} of ${count} tasks reached the backlog of ${taskQueue}`);
}

describe('startTemporalDevServer', () => {
  let port: number;
  before(async () => {
    port = await freePort();
    server = await startTemporalDevServer({ cliPath, dataDir, port, uiPort: false, log });
  });
  after(async () => {
    await server.stop();
  });

  test('starts the real dev server with every Atelier search attribute registered as its type', async () => {
    assert.equal(server.address, `127.0.0.1:${port}`);
    assert.equal(server.uiUrl, undefined);
    assert.equal(server.dbFile, path.join(dataDir, 'temporal.db'));
    await fs.access(server.dbFile);
    // SQLite's file header says the journal mode: bytes 18 and 19 (write and read versions) are 2 in WAL mode, 1 in
    // the default rollback-journal mode.
    const header = Buffer.alloc(20);
    const file = await fs.open(server.dbFile, 'r');
    await file.read(header, 0, 20, 0).finally(() => file.close());
    assert.deepEqual([header[18], header[19]], [2, 2], 'the database is in WAL mode');
    const listed = await withClient(server.address, (_c, connection) =>
      connection.operatorService.listSearchAttributes({ namespace: 'default' }),
    );
    for (const key of SEARCH_ATTRIBUTES) {
      const type = listed.customAttributes[key.name];
      assert.ok(type !== undefined, `search attribute ${key.name} is not registered`);
      // INDEXED_VALUE_TYPE_KEYWORD = 2, INDEXED_VALUE_TYPE_BOOL = 5
      assert.equal(String(type), String(encodeSearchAttributeIndexedValueType(key.type)), `${key.name}: ${key.type}`);
    }
  });

  test('dispatches queued tasks by priority key: turbo before fast before relax, whatever the arrival order', async () => {
    const taskQueue = `priority-${Date.now()}`;
    await withClient(server.address, async (client, connection) => {
      // Queued with no worker polling, in the worst order: relax first, turbo last.
      for (const tier of ['relax', 'fast', 'turbo'] as const) {
        await client.workflow.start('generateImage', {
          taskQueue,
          workflowId: `priority-${tier}-${taskQueue}`,
          priority: { priorityKey: TIER_PRIORITY_KEY[tier] },
        });
      }
      await waitForBacklog(connection, taskQueue, 3);
      const order = [
        await pollWorkflowId(connection, taskQueue),
        await pollWorkflowId(connection, taskQueue),
        await pollWorkflowId(connection, taskQueue),
      ];
      assert.deepEqual(
        order,
        ['turbo', 'fast', 'relax'].map((tier) => `priority-${tier}-${taskQueue}`),
      );
    });
  });

  test('keeps running workflows across a restart on the same data dir', async () => {
    const address = server.address;
    const workflowId = `survives-restart-${Date.now()}`;
    await withClient(address, (client) =>
      client.workflow.start('generateImage', { taskQueue: 'nobody-polls', workflowId }),
    );
    await server.stop();
    assert.equal(await temporalAnswers(address, 1_000), false, 'the server must be down after stop()');
    const exit = await server.exited;
    assert.equal(exit.signal === 'SIGKILL', false, 'stop() should not need SIGKILL');

    server = await startTemporalDevServer({ cliPath, dataDir, port, uiPort: false, log });
    const description = await withClient(address, (client) => client.workflow.getHandle(workflowId).describe());
    assert.equal(description.status.name, 'RUNNING');
  });

  test('refuses a port that is already taken instead of mistaking the other server for its own', async () => {
    const takenPort = port;
    const otherDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-temporal-test-'));
    try {
      await assert.rejects(
        startTemporalDevServer({
          cliPath,
          dataDir: otherDir,
          port: takenPort,
          uiPort: false,
          log,
          readyTimeoutMs: 30_000,
        }),
        (err: unknown) => {
          assert.ok(err instanceof TemporalStartError);
          assert.match(err.message, /already listening/);
          return true;
        },
      );
    } finally {
      await fs.rm(otherDir, { recursive: true, force: true });
    }
  });
});

describe('startTemporalDevServer failures', () => {
  test('a server that dies during start-up is reported with its own output', async () => {
    const brokenDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-temporal-test-'));
    // A directory where the SQLite file should be: the server cannot open its store and exits.
    await fs.mkdir(path.join(brokenDir, 'temporal.db'));
    try {
      await assert.rejects(
        startTemporalDevServer({ cliPath, dataDir: brokenDir, port: await freePort(), uiPort: false, log }),
        (err: unknown) => {
          assert.ok(err instanceof TemporalStartError);
          assert.match(err.message, /exited during start-up/);
          assert.ok(err.message.includes(path.join(brokenDir, 'temporal.db')), err.message);
          assert.match(err.message, /failed starting server/);
          return true;
        },
      );
    } finally {
      await fs.rm(brokenDir, { recursive: true, force: true });
    }
  });
});

describe('localTestServerConfig', () => {
  test('gives TestWorkflowEnvironment.createLocal the same binary and search attributes', async () => {
    const env = await TestWorkflowEnvironment.createLocal({ server: localTestServerConfig(cliPath) });
    try {
      const listed = await env.connection.operatorService.listSearchAttributes({
        namespace: env.namespace ?? 'default',
      });
      for (const key of SEARCH_ATTRIBUTES)
        assert.ok(listed.customAttributes[key.name] !== undefined, `${key.name} missing`);
    } finally {
      await env.teardown();
    }
  });
});
