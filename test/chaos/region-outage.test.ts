// Chaos, issue 12 `region_outage` (seed 001: a region lost, "< 5 min detection, < 10 min failover, possible queue
// loss"). Two regions on the real local stack, us-west and us-east, each with its gateway, control worker and A10G
// fleet. us-east gets a burst (one request generating, the rest waiting for its GPU) and us-west bench:load's
// generator, then every process of us-east is SIGKILLed and kept down. Its clients fail over to us-west's gateway and
// re-send each pending request with its requestId (a re-attach). us-west's control worker sees the region dead, adopts
// its control queue and moves its requests over; the Temporal server is restarted in the middle of that failover.
// Then us-east comes back (failback): new requests sent to it run there again. Every accepted request must reach its
// client completed, exactly once: lost 0, duplicates 0. Reports detection, failover and failback times.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type StackHandle } from '../../infra/test-stack';
import { eventually } from '../helpers/eventually';
import { within } from '../helpers/deadline';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';
import { benchLoad, countOutcomes, reportExperiment } from './harness';

/** Seed 001's region row: detection < 5 min, failover < 10 min; issue 12 asks for 60 s and 2 min here. */
const DETECTION_BOUND_MS = 60_000;
const FAILOVER_BOUND_MS = 120_000;
const EAST = ['gpu-worker[a10g]@us-east', 'control-worker@us-east', 'gateway@us-east'];

describe('region_outage: every process of a region killed under load', () => {
  let stack: StackHandle;
  const sockets: TestSocket[] = [];
  const open = async (url: string): Promise<TestSocket> => {
    const socket = await connectTestSocket(url, stack.apiKey);
    sockets.push(socket);
    return socket;
  };

  before(async () => {
    stack = await startStack({
      regions: ['us-west', 'us-east'],
      gpuTypes: ['a10g'],
      gatewayPort: 0,
      env: {
        // About half a second per burst request on the one-slot simulated A10G: a queue forms in us-east.
        ATELIER_SIM_SPEEDUP: '2',
        LOG_LEVEL: 'warn',
        // The clients' re-sends are admitted like new requests; the experiment is about regions, not quotas.
        ATELIER_RATE_LIMIT_PER_MINUTE: '100000',
        ATELIER_MAX_IN_FLIGHT_PER_USER: '100000',
      },
    } as Parameters<typeof startStack>[0]);
  });
  after(async () => {
    for (const socket of sockets) await within('a test socket', 10_000, socket.close());
    await within('the two-region stack', 60_000, stack?.stop() ?? Promise.resolve());
  });

  /** A socket to a gateway that is starting: refused connections are tried again for up to 30 s. */
  async function openWhenListening(url: string): Promise<TestSocket> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await open(url);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /** us-east's health as us-west's gateway sees it (its admin API). */
  async function eastHealthy(): Promise<boolean> {
    const west = stack.regions[0];
    assert.ok(west);
    const res = await fetch(`${west.gatewayHttpUrl}/admin/regions`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    const body = (await res.json()) as { regions: { region: string; healthy: boolean }[] };
    return body.regions.find((r) => r.region === 'us-east')?.healthy === true;
  }

  /** Sends SDXL requests (512x512, 10 steps) to a gateway and waits until each is accepted; returns them. */
  async function burst(socket: TestSocket, label: string, count: number): Promise<Record<string, unknown>[]> {
    const frames = Array.from({ length: count }, (_, i) => ({
      type: 'generate',
      requestId: `${label}-${Date.now()}-${i}`,
      prompt: `a harbour in the rain, variation ${i}`,
      model: 'sdxl',
      tier: i % 3 === 2 ? 'relax' : 'fast',
      width: 512,
      height: 512,
      steps: 10,
    }));
    for (const frame of frames) socket.send(frame);
    for (const { requestId } of frames) {
      const first = await socket.waitFor((f) => f.requestId === requestId && f.type !== 'status', 60_000);
      assert.equal(first.type, 'accepted', JSON.stringify(first));
    }
    return frames;
  }

  test('nothing lost or answered twice; detection, failover and failback within bounds', async () => {
    const [west, east] = stack.regions;
    assert.ok(west && east);
    await eventually(eastHealthy, 60_000, 'us-east healthy before the outage');
    const eastSocket = await open(east.gatewayWsUrl);
    const westSocket = await open(west.gatewayWsUrl);

    // us-east busy: one request generating, the others waiting for its GPU.
    const eastFrames = await burst(eastSocket, 'outage-east', 10);
    await eastSocket.waitFor((f) => f.type === 'progress', 60_000);
    const load = benchLoad(westSocket, 'outage-west', 1, 20);
    const killedAt = Date.now();
    await Promise.all(EAST.map((name) => stack.crashChild(name)));

    // The clients of us-east's gateway fail over to us-west's and re-send what is still pending (a re-attach).
    const pending = eastFrames.filter(
      (f) => !eastSocket.framesFor(f.requestId as string).some((e) => e.type === 'completed' || e.type === 'failed'),
    );
    for (const frame of pending) westSocket.send(frame);

    await eventually(async () => !(await eastHealthy()), DETECTION_BOUND_MS + 30_000, 'us-east seen dead');
    const detectionMs = Date.now() - killedAt;
    // The Temporal server restarts in the middle of the failover (issue 12 item 7): it must lose nothing either.
    await stack.restartTemporal();

    const eastIds = eastFrames.map((f) => f.requestId as string);
    // Those answered before the kill reached their client through us-east; the rest come through us-west.
    await Promise.allSettled(pending.map((f) => westSocket.terminal(f.requestId as string, 240_000)));
    const failoverMs = Date.now() - killedAt;
    const moved = eastIds.filter((id) =>
      westSocket.framesFor(id).some((f) => f.type === 'status' && f.region === 'us-west' && f.degraded === true),
    );
    const loadIds = (await load).accepted;
    await Promise.allSettled(loadIds.map((id) => westSocket.terminal(id, 240_000)));

    // Failback: us-east comes back; new requests sent to it run there, and nothing that moved runs twice.
    const restartedAt = Date.now();
    for (const name of EAST) await stack.startChild(name);
    await eventually(eastHealthy, 60_000, 'us-east healthy again');
    const recoveredMs = Date.now() - restartedAt;
    const backSocket = await openWhenListening(east.gatewayWsUrl);
    const backIds = (await burst(backSocket, 'failback', 4)).map((f) => f.requestId as string);
    await Promise.allSettled(backIds.map((id) => backSocket.terminal(id, 120_000)));
    const failbackMs = Date.now() - restartedAt;
    // Late duplicates (a stale attempt of a frozen or killed worker) would arrive by now.
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    const terminalsOf = (id: string): { type: string }[] =>
      [eastSocket, westSocket, backSocket].flatMap((s) => s.framesFor(id)).filter(isTerminal);
    const ids = [...eastIds, ...loadIds, ...backIds];
    const figures = countOutcomes(terminalsOf, ids);
    reportExperiment('region_outage', {
      ...figures,
      recoveryMs: failoverMs,
      phasesMs: { detection: detectionMs, 'back healthy': recoveredMs, failback: failbackMs },
    });
    process.stdout.write(
      `region_outage: detection ${detectionMs} ms, failover ${failoverMs} ms (${moved.length} of ${eastIds.length} us-east requests told they moved), failback ${failbackMs} ms\n`,
    );
    assert.deepEqual(
      { lost: figures.lost, duplicates: figures.duplicates, completedOnce: figures.completedOnce },
      { lost: 0, duplicates: 0, completedOnce: ids.length },
    );
    assert.ok(moved.length > 0, 'the requests waiting in us-east were moved to us-west, and their clients told');
    assert.ok(detectionMs <= DETECTION_BOUND_MS, `detected in ${detectionMs} ms`);
    assert.ok(failoverMs <= FAILOVER_BOUND_MS, `failed over in ${failoverMs} ms`);
    for (const id of backIds) {
      const queued = backSocket.framesFor(id).find((f) => f.type === 'status' && f.status === 'queued');
      assert.equal(queued?.region, 'us-east', `${id} runs in us-east again`);
      assert.notEqual(queued?.degraded, true, `${id} is not degraded`);
    }
  });
});

function isTerminal(f: { type: unknown }): f is { type: string } {
  return f.type === 'completed' || f.type === 'failed';
}
