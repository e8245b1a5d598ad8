// Operator controls on the real local stack: through the gateway's authenticated admin API, pause a GPU fleet while
// it generates (what it holds finishes, nothing new starts), resume it (the waiting requests run), then drain it (what
// it holds finishes and the worker exits, and the launcher does not start it again). Every request reaches its client
// exactly once, completed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStack, type StackHandle } from '../../infra/test-stack';
import type { WorkerRecord } from '../../runtime/worker-control';
import { within } from '../helpers/deadline';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';
import { assertEachCompletedOnce, sendAcceptedBurst } from '../chaos/harness';

const WORKER = 'gpu-worker[a10g]';

describe('pause, resume and drain a GPU fleet with requests in flight', () => {
  let stack: StackHandle;
  let socket: TestSocket;

  before(async () => {
    // One fleet, with modelled GPU time (about 3 s a request), so orders land while requests run and wait.
    stack = await startStack({ gpuTypes: ['a10g'], env: { ATELIER_SIM_SPEEDUP: '1', LOG_LEVEL: 'warn' } });
    socket = await connectTestSocket(stack.gatewayWsUrl, stack.apiKey);
  });
  after(async () => {
    await within('the test socket', 10_000, socket?.close() ?? Promise.resolve());
    await within('the local stack', 60_000, stack?.stop() ?? Promise.resolve());
  });

  const admin = async (method: 'GET' | 'POST', path: string, token = stack.adminToken) => {
    const res = await fetch(`${stack.gatewayHttpUrl}${path}`, {
      method,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const workers = async (): Promise<WorkerRecord[]> =>
    (await admin('GET', '/admin/workers')).body.workers as WorkerRecord[];
  const waitForWorker = async (what: string, check: (w: WorkerRecord[]) => boolean): Promise<WorkerRecord[]> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const list = await workers();
      if (check(list)) return list;
      if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(list)}`);
      await sleep(200);
    }
  };
  const send = (label: string, n: number) => sendAcceptedBurst(socket, label, n);

  test('the admin API refuses a missing or wrong token, and lists the fleet', async () => {
    assert.equal((await admin('GET', '/admin/workers', '')).status, 401);
    assert.equal((await admin('GET', '/admin/workers', 'not-the-token-at-all')).status, 401);
    const bad = await admin('POST', '/admin/fleets/a10g/explode');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'BAD_ORDER');
    assert.equal((await admin('POST', '/admin/fleets/z80/pause')).status, 400);
    assert.equal((await admin('POST', '/admin/workers/nobody/drain')).status, 404);
    const list = await waitForWorker('the a10g worker announces itself', (l) => l.length === 1);
    assert.equal(list[0]?.gpuType, 'a10g');
    assert.equal(list[0]?.state, 'serving');
    assert.equal(list[0]?.breaker, 'CLOSED');
  });

  test('pause: in-flight requests finish, new ones wait; resume: they run', async () => {
    const running = await send('paused', 3);
    await socket.waitFor((f) => f.type === 'progress' && running.includes(f.requestId as string), 60_000);
    const paused = await admin('POST', '/admin/fleets/a10g/pause');
    assert.equal(paused.status, 202, JSON.stringify(paused.body));
    await waitForWorker('the worker is held, paused', (l) => l[0]?.state === 'held' && 'paused' in l[0].holds);
    const readyz = stack.metricsUrls()[WORKER]?.replace(/\/metrics$/, '/readyz') ?? '';
    const ready = await fetch(readyz);
    assert.equal(ready.status, 503, 'a paused worker is not ready');
    assert.match(await ready.text(), /paused by an operator/);

    await assertEachCompletedOnce(socket, running);
    const waiting = await send('while-paused', 2);
    await sleep(3_000);
    for (const id of waiting) {
      const started = socket.framesFor(id).some((f) => f.type === 'status' && f.status === 'generating');
      assert.equal(started, false, `${id} does not start on a paused fleet`);
    }
    assert.equal((await admin('POST', '/admin/fleets/a10g/resume')).status, 202);
    await assertEachCompletedOnce(socket, waiting);
    await waitForWorker('serving again', (l) => l[0]?.state === 'serving');
  });

  test('drain: in-flight requests finish, then the worker exits and stays down', async () => {
    const running = await send('drained', 2);
    await socket.waitFor((f) => f.type === 'progress' && running.includes(f.requestId as string), 60_000);
    const drained = await admin('POST', '/admin/fleets/a10g/drain');
    assert.equal(drained.status, 202);
    assert.equal((drained.body.workers as string[]).length, 1, 'the order names the worker it reached');
    await assertEachCompletedOnce(socket, running);
    await waitForWorker('the drained worker leaves the registry', (l) => l.length === 0);
    const deadline = Date.now() + 30_000;
    while (stack.children().find((c) => c.name === WORKER)?.pid !== undefined) {
      assert.ok(Date.now() < deadline, 'the drained worker exits');
      await sleep(200);
    }
    await sleep(2_000);
    assert.equal(stack.children().find((c) => c.name === WORKER)?.pid, undefined, 'and is not restarted');
  });
});
