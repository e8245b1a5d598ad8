// Several regions in one local stack (issue 12): `ATELIER_REGIONS=us-west,us-east` runs, per region, a control worker,
// its GPU fleets and a gateway on a port of its own, on one Temporal server and one Redis. A request sent to the
// us-east gateway with the command-line client runs in us-east: its workflow is on us-east's control queue, its GPU
// step on us-east's fleet queue, taken by us-east's GPU worker process; stack.json lists both regions' gateways. Each
// region keeps its images in its own store, and an image made in one is served through the other's gateway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { generationWorkflowId } from '../../core/request';
import { startStack, repoRoot, type StackHandle } from '../../infra/test-stack';
import { decodePng } from '../helpers/png';
import { within } from '../helpers/deadline';
import { eventually } from '../helpers/eventually';
import { connectTestSocket } from '../helpers/ws-client';

const run = promisify(execFile);

describe('two regions in one local stack', () => {
  let stack: StackHandle;

  before(async () => {
    stack = await startStack({
      regions: ['us-west', 'us-east'],
      gpuTypes: ['a10g'],
      env: { ATELIER_SIM_SPEEDUP: '20', LOG_LEVEL: 'warn' },
    } as Parameters<typeof startStack>[0]);
  });

  after(async () => {
    await within('the two-region stack', 60_000, stack?.stop() ?? Promise.resolve());
  });

  test('each region has its gateway, control worker and fleet, and stack.json lists both gateways', async () => {
    assert.deepEqual(
      stack.regions.map((r) => r.region),
      ['us-west', 'us-east'],
    );
    const [west, east] = stack.regions;
    assert.ok(west && east && west.gatewayHttpUrl !== east.gatewayHttpUrl);
    for (const r of stack.regions) assert.equal((await fetch(`${r.gatewayHttpUrl}/readyz`)).status, 200, r.region);
    assert.deepEqual(
      stack
        .children()
        .map((c) => c.name)
        .sort(),
      [
        'control-worker',
        'control-worker@us-east',
        'gateway',
        'gateway@us-east',
        'gpu-worker[a10g]',
        'gpu-worker[a10g]@us-east',
        'redis',
        'temporal',
      ],
    );
    const file = JSON.parse(await readFile(path.join(stack.dataDir, 'stack.json'), 'utf8')) as {
      regions: { name: string; wsUrl: string }[];
    };
    assert.deepEqual(
      file.regions.map((r) => [r.name, r.wsUrl]),
      [
        ['us-west', west.gatewayWsUrl],
        ['us-east', east.gatewayWsUrl],
      ],
    );
  });

  test('every gateway sees both regions healthy (their control workers beat, their GPU workers are ready), eu-west not', async () => {
    const east = stack.regions[1];
    assert.ok(east);
    const read = async (): Promise<Record<string, boolean>> => {
      const res = await fetch(`${east.gatewayHttpUrl}/admin/regions`, {
        headers: { authorization: `Bearer ${stack.adminToken}` },
      });
      const body = (await res.json()) as { regions: { region: string; healthy: boolean }[] };
      return Object.fromEntries(body.regions.map((r) => [r.region, r.healthy]));
    };
    await eventually(
      async () =>
        JSON.stringify(await read()) === JSON.stringify({ 'us-west': true, 'us-east': true, 'eu-west': false }),
      30_000,
      'us-west and us-east healthy, eu-west (not running) not',
    );
    // eu-west is dead but has no request: no control worker adopts its queue (one failover round is 5 s).
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const connection = await Connection.connect({ address: stack.temporalAddress });
    try {
      const described = await connection.workflowService.describeTaskQueue({
        namespace: stack.temporalNamespace,
        taskQueue: { name: 'eu-west.control' },
        taskQueueType: 1,
      });
      assert.deepEqual(described.pollers ?? [], [], 'nobody polls the control queue of a region never deployed');
    } finally {
      await connection.close();
    }
  });

  test('npm run generate through the us-east gateway runs the request in us-east', async () => {
    const east = stack.regions[1];
    assert.ok(east);
    const dir = await mkdtemp(path.join(tmpdir(), 'atelier-regions-'));
    const out = path.join(dir, 'east.png');
    const requestId = `east-${Date.now()}`;
    const cli = path.join(repoRoot(), 'dist', 'client', 'generate-cli.js');
    const args = ['a harbour at dawn', '--tier', 'fast', '--width', '256', '--height', '256', '--steps', '3'];
    await run(
      process.execPath,
      [cli, ...args, '--request-id', requestId, '--out', out, '--url', east.gatewayWsUrl, '--key', stack.apiKey],
      { timeout: 120_000 },
    );
    const png = decodePng(await readFile(out));
    assert.deepEqual([png.width, png.height], [256, 256]);

    const connection = await Connection.connect({ address: stack.temporalAddress });
    try {
      const client = new Client({ connection, namespace: stack.temporalNamespace });
      const workflowId = generationWorkflowId('dev', requestId);
      const handle = client.workflow.getHandle(workflowId);
      const description = await handle.describe();
      assert.equal(description.taskQueue, 'us-east.control');
      assert.deepEqual(description.searchAttributes.Region, ['us-east']);
      const history = await handle.fetchHistory();
      const scheduled = (history.events ?? []).flatMap((e) =>
        e.activityTaskScheduledEventAttributes?.activityType?.name === 'runInference'
          ? [e.activityTaskScheduledEventAttributes.taskQueue?.name]
          : [],
      );
      assert.deepEqual(scheduled, ['us-east.gpu-a10g']);
      const eastWorker = stack.children().find((c) => c.name === 'gpu-worker[a10g]@us-east');
      const started = (history.events ?? []).flatMap((e) =>
        e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.identity ?? ''] : [],
      );
      assert.ok(
        started.some((identity) => identity.startsWith(`${eastWorker?.pid}@`)),
        `taken by us-east's GPU worker (pid ${eastWorker?.pid}): ${started.join(', ')}`,
      );
    } finally {
      await connection.close();
    }
  });

  test("an image stored in us-west is served through us-east's gateway: replicated into us-east's store, and read from its origin until then", async () => {
    const [west, east] = stack.regions;
    assert.ok(west && east);
    const socket = await connectTestSocket(west.gatewayWsUrl, stack.apiKey);
    try {
      const requestId = `replicated-${Date.now()}`;
      socket.send({
        type: 'generate',
        requestId,
        prompt: 'a lighthouse',
        model: 'sdxl',
        tier: 'fast',
        width: 256,
        height: 256,
        steps: 3,
      });
      const done = await socket.terminal(requestId, 120_000);
      assert.equal(done.type, 'completed', JSON.stringify(done));
      const [image] = done.images as { url: string }[];
      assert.ok(image);
      const key = decodeURIComponent(new URL(image.url).pathname.slice('/v1/images/'.length));
      const objects = path.join(stack.dataDir, 'objects');
      const origin = await readFile(path.join(objects, 'us-west', key));
      await eventually(
        async () => (await readFile(path.join(objects, 'us-east', key)).catch(() => null))?.equals(origin) === true,
        30_000,
        "the image replicated into us-east's store",
      );
      const throughEast = image.url.replace(west.gatewayHttpUrl, east.gatewayHttpUrl);
      assert.notEqual(throughEast, image.url);
      const replicated = await fetch(throughEast);
      assert.equal(replicated.status, 200);
      assert.ok(Buffer.from(await replicated.arrayBuffer()).equals(origin), 'the same bytes, from the replica');

      // Before replication (here: the replica removed), us-east's gateway reads the image from its origin.
      const peerReads = async (): Promise<number> => {
        const text = await (await fetch(`${east.gatewayHttpUrl}/metrics`)).text();
        return Number(/^atelier_image_peer_reads_total\{[^}]*origin="us-west"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
      };
      const before = await peerReads();
      await rm(path.join(objects, 'us-east', key));
      await rm(path.join(objects, 'us-east', `${key}.meta.json`));
      const fromOrigin = await fetch(throughEast);
      assert.equal(fromOrigin.status, 200);
      assert.ok(Buffer.from(await fromOrigin.arrayBuffer()).equals(origin), 'the same bytes, from us-west');
      assert.equal(await peerReads(), before + 1, "counted as a read from us-west's store");
    } finally {
      await socket.close();
    }
  });

  test('a request waiting in a region that goes dark moves to the nearest healthy region and ends once', async () => {
    const east = stack.regions[1];
    assert.ok(east);
    const socket = await connectTestSocket(east.gatewayWsUrl, stack.apiKey);
    const frozen = ['gpu-worker[a10g]@us-east', 'control-worker@us-east'];
    try {
      // us-east's GPU worker stops (frozen, as a partitioned machine), then a request arrives while the region still
      // looks healthy (its worker's last announcement counts for 30 s), then its control worker stops too.
      stack.killChild('gpu-worker[a10g]@us-east', 'SIGSTOP');
      const requestId = `stranded-${Date.now()}`;
      socket.send({
        type: 'generate',
        requestId,
        prompt: 'a lantern in fog',
        model: 'sdxl',
        tier: 'fast',
        width: 256,
        height: 256,
        steps: 3,
      });
      const queued = await socket.waitFor(
        (f) => f.requestId === requestId && f.type === 'status' && f.status === 'queued',
      );
      assert.equal(queued.region, 'us-east');
      stack.killChild('control-worker@us-east', 'SIGSTOP');
      const stoppedAt = Date.now();
      const terminal = await socket.terminal(requestId, 150_000);
      const failoverMs = Date.now() - stoppedAt;
      process.stdout.write(`region failover of a waiting request: ${failoverMs} ms after the region went dark\n`);
      assert.equal(terminal.type, 'completed', JSON.stringify(terminal));
      const moved = socket.frames.find(
        (f) => f.requestId === requestId && f.type === 'status' && f.region === 'us-west' && f.degraded === true,
      );
      assert.ok(moved, 'the client was told it moved to us-west');
      assert.ok(failoverMs < 120_000, `moved and completed within 2 minutes (${failoverMs} ms)`);

      // us-east comes back: the frozen worker's stale task is refused by Temporal, the client hears nothing more.
      for (const name of frozen) stack.killChild(name, 'SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      const terminals = socket.frames.filter(
        (f) => f.requestId === requestId && (f.type === 'completed' || f.type === 'failed'),
      );
      assert.equal(terminals.length, 1, 'exactly one terminal event');
    } finally {
      for (const name of frozen) stack.killChild(name, 'SIGCONT');
      await socket.close();
    }
  });
});
