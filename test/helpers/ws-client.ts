// A raw protocol client for end-to-end tests: it speaks the wire format directly (not client/client.ts), so the
// tests check the protocol itself. Frames are collected per request; helpers wait for the ones a test expects.
import WebSocket from 'ws';
import type { ServerFrame } from '../../core/protocol';

export type Frame = ServerFrame & Record<string, unknown>;

export interface TestSocket {
  readonly frames: Frame[];
  send(frame: unknown): void;
  sendRaw(data: string | Buffer, binary?: boolean): void;
  /** Resolves with the first frame (already received or future) that matches. */
  waitFor(match: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Frames about one request, in arrival order. */
  framesFor(requestId: string): Frame[];
  /** Resolves with the request's terminal frame (completed, failed or rejected). */
  terminal(requestId: string, timeoutMs?: number): Promise<Frame>;
  close(): Promise<void>;
}

export async function connectTestSocket(url: string, apiKey: string): Promise<TestSocket> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${apiKey}` } });
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    frames.push(JSON.parse(String(data)) as Frame);
    for (const w of waiters) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });

  const waitFor = (match: (f: Frame) => boolean, timeoutMs = 60_000): Promise<Frame> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = frames.find(match);
        if (found) {
          waiters.delete(check as () => void);
          clearTimeout(timer);
          resolve(found);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        waiters.delete(check as () => void);
        reject(new Error(`timed out after ${timeoutMs} ms; frames so far: ${JSON.stringify(frames).slice(-2000)}`));
      }, timeoutMs);
      if (!check()) waiters.add(check as () => void);
    });

  return {
    frames,
    send: (frame) => ws.send(JSON.stringify(frame)),
    sendRaw: (data, binary = false) => ws.send(data, { binary }),
    waitFor,
    framesFor: (requestId) => frames.filter((f) => f.requestId === requestId),
    terminal: (requestId, timeoutMs) =>
      waitFor((f) => f.requestId === requestId && ['completed', 'failed', 'rejected'].includes(f.type), timeoutMs),
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
}
