// The gateway while Temporal is away: it starts and reports unready without it, holds a `generate` (retrying the
// workflow start) until the server is back, survives a server restart, and rejects with SERVICE_UNAVAILABLE once
// its retry window is spent. Uses the real Temporal CLI dev server on a port we choose, stopped and restarted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generationWorkflowId } from '../../core/request';
import { freePort } from '../../infra/ports';
import { localTestServerConfig, startTemporalDevServer, type TemporalServerHandle } from '../../infra/temporal';
import { createLogger } from '../../runtime/logger';
import { generateFrame, startTestGateway, TestSocket, uniqueRequestId, type TestGateway } from './harness';

const KEY = 'test-key-alice';

async function readyz(
  gw: TestGateway,
): Promise<{ status: number; body: { ready: boolean; checks: Record<string, { ok: boolean }> } }> {
  const res = await fetch(`${gw.address.httpUrl}/readyz`);
  return {
    status: res.status,
    body: (await res.json()) as { ready: boolean; checks: Record<string, { ok: boolean }> },
  };
}

void describe('gateway while Temporal is unreachable', () => {
  let port: number;
  let dataDir: string;
  let server: TemporalServerHandle | null = null;
  let gw: TestGateway;
  const log = createLogger('temporal-outage-test').child({}, { level: 'error' });

  const startServer = async (): Promise<TemporalServerHandle> => {
    const executable = localTestServerConfig().executable;
    assert.ok(executable?.type === 'existing-path');
    return startTemporalDevServer({
      cliPath: executable.path,
      dataDir,
      port,
      uiPort: false,
      log,
      onOutput: () => undefined,
    });
  };

  before(async () => {
    port = await freePort();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-outage-'));
    // No Temporal yet: the gateway must come up anyway and connect once there is one.
    gw = await startTestGateway({ temporalAddress: `127.0.0.1:${port}`, startRetryMs: 90_000 });
  });
  after(async () => {
    await gw?.stop();
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  void test('readyz is 503 with the failing check named while Temporal is down', async () => {
    const { status, body } = await readyz(gw);
    assert.equal(status, 503);
    assert.equal(body.ready, false);
    assert.equal(body.checks.redis?.ok, true);
    assert.equal(body.checks.temporal?.ok, false);
  });

  void test('a generate sent while Temporal is down is accepted once it is up, and not before', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, KEY);
    const requestId = uniqueRequestId('waiting');
    socket.send(generateFrame({ requestId }));
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(socket.frames, [], 'nothing is sent while the start cannot succeed');

    server = await startServer();
    const accepted = await socket.nextFor(requestId, 'accepted', 60_000);
    assert.equal(accepted.workflowId, generationWorkflowId('alice', requestId));
    assert.equal(accepted.seq, 1);
    assert.equal((await readyz(gw)).status, 200);
    await socket.close();
  });

  void test('after a Temporal restart the same connection keeps working and requests are still idempotent', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, KEY);
    const before = uniqueRequestId('before-restart');
    socket.send(generateFrame({ requestId: before }));
    await socket.nextFor(before, 'accepted', 30_000);

    await server?.stop();
    const during = uniqueRequestId('during-restart');
    socket.send(generateFrame({ requestId: during }));
    server = await startServer();
    const accepted = await socket.nextFor(during, 'accepted', 60_000);
    assert.equal(accepted.seq, 1);

    // The workflow started before the restart persisted; re-sending its requestId re-attaches to it.
    socket.send(generateFrame({ requestId: before }));
    const again = await socket.nextFor(before, 'accepted', 30_000);
    assert.equal(again.seq, 1);
    assert.equal(again.workflowId, generationWorkflowId('alice', before));
    await socket.close();
  });
});

void describe('gateway whose retry window runs out', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({ temporalAddress: `127.0.0.1:${await freePort()}`, startRetryMs: 1500 });
  });
  after(async () => gw?.stop());

  void test('rejects with SERVICE_UNAVAILABLE carrying the requestId, and the connection stays open', async () => {
    const socket = await TestSocket.open(gw.address.wsUrl, KEY);
    const requestId = uniqueRequestId('unavailable');
    const sentAt = Date.now();
    socket.send(generateFrame({ requestId }));
    const rejected = await socket.nextFor(requestId, 'rejected', 20_000);
    assert.equal(rejected.code, 'SERVICE_UNAVAILABLE');
    assert.ok(Date.now() - sentAt >= 1000, 'the start was retried before giving up');
    assert.ok(!socket.frames.some((f) => f.type === 'accepted'));

    socket.sendRaw('not json');
    const error = await socket.next((f) => f.type === 'error');
    assert.equal(error.type === 'error' && error.code, 'BAD_JSON');
    await socket.close();
  });
});
