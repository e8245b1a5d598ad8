// AtelierClient skips frames it has seen (a re-attach replays a log from its start) but never the outcome: when a
// request's event log was lost and begun again, its terminal frame can carry a seq below what the client has seen,
// and it must still resolve the request. A bare `ws` server plays the gateway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { AtelierClient, type RequestEventFrame } from '../../client/client';

void describe('AtelierClient and a log begun again', () => {
  let server: WebSocketServer;
  let url: string;
  before(async () => {
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/ws`;
    server.on('connection', (ws: WebSocket) => {
      ws.on('message', (data) => {
        const { requestId } = JSON.parse(data.toString()) as { requestId: string };
        const send = (frame: Record<string, unknown>): void => ws.send(JSON.stringify({ requestId, ...frame }));
        send({ type: 'accepted', workflowId: `gen:u:${requestId}`, seq: 1 });
        send({ type: 'status', status: 'queued', seq: 2 });
        send({ type: 'status', status: 'pending_safety', seq: 3 });
        // The log was lost; a resubmission began it again at 1. Statuses already seen are skipped, the outcome not.
        send({ type: 'accepted', workflowId: `gen:u:${requestId}`, seq: 1 });
        send({ type: 'failed', code: 'TIMED_OUT', message: 'timed out', retryable: true, seq: 2 });
      });
    });
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  void test('the terminal frame resolves the request even below the seq already seen; nothing else repeats', async () => {
    const client = await AtelierClient.connect({ url, apiKey: 'k' });
    const seen: RequestEventFrame[] = [];
    const outcome = await client.generate({ prompt: 'p', model: 'tiny-sd', tier: 'fast', width: 64, height: 64 }, (f) =>
      seen.push(f),
    );
    assert.equal(outcome.type, 'failed');
    assert.deepEqual(
      seen.map((f) => f.type),
      ['accepted', 'status', 'status', 'failed'],
    );
    await client.close();
  });
});
