// Failover of new requests between regions (issue 12), at a us-east gateway on a real Temporal dev server, with each
// region's live signals written to Redis as its processes write them (control workers' and gateways' beats, GPU
// workers in the registry). A request goes home while home is healthy; around an unhealthy home to the nearest healthy
// region that serves its model, and its client is told where and that it is degraded; back home once home is healthy
// again (failback); and a model only the primary serves, while the primary is down, is refused with
// REGION_UNAVAILABLE and a retryAfterMs. The admin API shows every region's health.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { generationWorkflowId } from '../../core/request';
import { RegionBeats } from '../../runtime/region-beats';
import { WorkerControlStore } from '../../runtime/worker-control';
import { connectTestSocket } from '../helpers/ws-client';
import { generateFrame, uniqueRequestId, useGatewayOnTemporal } from './harness';

const ADMIN_TOKEN = 'region-admin-token';
/** The gateway reads the regions' signals at most once a second. */
const VIEW_CACHE_MS = 1_100;

describe('failover of new requests between regions (issue 12)', () => {
  const t = useGatewayOnTemporal({ region: 'us-east', adminToken: ADMIN_TOKEN });

  /** Makes `region` healthy (a control worker and a ready GPU worker heard from now) or takes its signals away. */
  async function setHealthy(region: string, healthy: boolean): Promise<void> {
    const { redis } = t.gw;
    const beats = new RegionBeats(redis.redis, redis.prefix);
    const workers = new WorkerControlStore(redis.redis, redis.prefix);
    const workerId = `test-gpu-${region}`;
    if (healthy) {
      await beats.beat(region, 'control', `test-control-${region}`);
      await workers.announce({
        workerId,
        region,
        gpuType: 'a10g',
        state: 'serving',
        holds: {},
        breaker: 'closed',
        ready: true,
        announcedAt: Date.now(),
      });
    } else {
      await beats.leave(region, 'control', `test-control-${region}`);
      await workers.withdraw(workerId);
    }
    await sleep(VIEW_CACHE_MS);
  }

  /** Sends a generate and returns its `queued` status frame (or the rejection). */
  async function send(fields: Record<string, unknown>): Promise<{ requestId: string; frame: Record<string, unknown> }> {
    const socket = await connectTestSocket(t.gw.address.wsUrl, 'test-key-alice');
    try {
      const requestId = uniqueRequestId('region');
      socket.send(generateFrame({ requestId, ...fields }));
      const frame = await socket.waitFor(
        (f) => f.requestId === requestId && (f.type === 'rejected' || (f.type === 'status' && f.status === 'queued')),
      );
      return { requestId, frame };
    } finally {
      await socket.close();
    }
  }

  async function taskQueueOf(requestId: string): Promise<string> {
    const handle = t.env.client.workflow.getHandle(generationWorkflowId('alice', requestId));
    const description = await handle.describe();
    await handle.terminate('test done');
    return description.taskQueue;
  }

  test('home while healthy; around an unhealthy home, degraded; back home once it recovers', async () => {
    await setHealthy('us-west', true);
    await setHealthy('us-east', true);
    const home = await send({});
    assert.equal(home.frame.region, 'us-east');
    assert.equal(home.frame.degraded, undefined);
    assert.equal(await taskQueueOf(home.requestId), 'us-east.control');

    await setHealthy('us-east', false);
    const moved = await send({});
    assert.equal(moved.frame.region, 'us-west', "us-east's nearest healthy neighbour");
    assert.equal(moved.frame.degraded, true, 'the client is told it runs elsewhere');
    assert.equal(await taskQueueOf(moved.requestId), 'us-west.control');

    await setHealthy('us-east', true);
    const back = await send({});
    assert.equal(back.frame.region, 'us-east', 'failback: new requests go home again');
    assert.equal(await taskQueueOf(back.requestId), 'us-east.control');
  });

  test('a model only the primary serves goes there, and while the primary is down it is refused with a retry', async () => {
    await setHealthy('us-east', true);
    await setHealthy('us-west', true);
    const flux = await send({ model: 'flux', width: 1024, height: 1024, steps: 4 });
    assert.equal(flux.frame.region, 'us-west');
    assert.equal(flux.frame.degraded, true);
    assert.equal(await taskQueueOf(flux.requestId), 'us-west.control');

    await setHealthy('us-west', false);
    const refused = await send({ model: 'flux', width: 1024, height: 1024, steps: 4 });
    assert.equal(refused.frame.type, 'rejected');
    assert.equal(refused.frame.code, 'REGION_UNAVAILABLE');
    assert.equal(refused.frame.retryAfterMs, 30_000);
    assert.match(String(refused.frame.message), /flux is served by us-west, and none of them is healthy/);

    // A model us-east serves stays home whatever the primary's state.
    const sdxl = await send({ model: 'sdxl', width: 512, height: 512, steps: 4 });
    assert.equal(sdxl.frame.region, 'us-east');
    await taskQueueOf(sdxl.requestId);
  });

  test("the admin API shows every region's health", async () => {
    await setHealthy('us-east', true);
    await setHealthy('us-west', false);
    const res = await fetch(`${t.gw.address.httpUrl}/admin/regions`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      home: string;
      regions: { region: string; healthy: boolean; gateways: number; problems: string[] }[];
    };
    assert.equal(body.home, 'us-east');
    const byName = Object.fromEntries(body.regions.map((r) => [r.region, r]));
    assert.equal(byName['us-east']?.healthy, true);
    assert.equal(byName['us-east']?.gateways, 1, 'this gateway beats for its region');
    assert.equal(byName['us-west']?.healthy, false);
    assert.deepEqual(byName['us-west']?.problems, [
      'no control worker heard from in 30 s',
      'no ready GPU worker',
      'no gateway heard from in 30 s',
    ]);
    assert.equal(byName['eu-west']?.healthy, false);
    const metrics = await (await fetch(`${t.gw.address.httpUrl}/metrics`)).text();
    assert.match(metrics, /atelier_region_healthy\{[^}]*region="us-east"[^}]*\} 1/);
    assert.match(metrics, /atelier_region_healthy\{[^}]*region="us-west"[^}]*\} 0/);
  });
});
