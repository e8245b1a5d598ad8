// Shared set-up of the gateway tests: a real Temporal dev server (TestWorkflowEnvironment.createLocal with
// Atelier's search attributes), a real Redis with a unique key prefix, a filesystem object store in a temporary
// directory, and the gateway itself started in-process on a free port. `TestSocket` is a raw protocol client that
// queues every frame, so tests can assert exact frames (the reusable AtelierClient hides them on purpose).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import type { ServerFrame } from '../../core/protocol';
import { createTemporalTestEnv } from '../helpers/temporal';
import { createLogger } from '../../runtime/logger';
import { FsObjectStore } from '../../runtime/object-store';
import { resolveGatewayOptions, type GatewayOptions } from '../../gateway/options';
import { createGateway, type Gateway, type GatewayAddress, type GatewayDeps } from '../../gateway/server';
import { testRedis, type TestRedis } from '../helpers/redis';

export const TEST_API_KEYS = 'test-key-alice:alice,test-key-bob:bob';

export function startTemporal(): Promise<TestWorkflowEnvironment> {
  return createTemporalTestEnv();
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly address: GatewayAddress;
  readonly redis: TestRedis;
  readonly objectStore: FsObjectStore;
  readonly options: GatewayOptions;
  stop(): Promise<void>;
}

/** Starts a gateway on a free port against real Redis and the given Temporal client (unless deps say otherwise). */
export async function startTestGateway(overrides: Partial<GatewayOptions>, deps: GatewayDeps = {}): Promise<TestGateway> {
  const redis = await testRedis();
  const storageDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-gateway-test-'));
  const objectStore = new FsObjectStore(storageDir);
  const options = resolveGatewayOptions(
    {},
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl: redis.url,
      redisPrefix: redis.prefix,
      storageDir,
      apiKeys: TEST_API_KEYS,
      gatewayId: 'gateway-test',
      shutdownGraceMs: 2000,
      ...overrides,
    },
  );
  const gateway = createGateway(options, {
    objectStore,
    logger: createLogger('gateway-test', {}).child({}, { level: process.env.LOG_LEVEL ?? 'warn' }),
    ...deps,
  });
  const address = await gateway.listen();
  return {
    gateway,
    address,
    redis,
    objectStore,
    options,
    async stop() {
      await gateway.close();
      await redis.cleanup();
      await rm(storageDir, { recursive: true, force: true });
    },
  };
}

/** A minimal valid generate frame for the tiny test model; fields can be overridden or deleted (undefined). */
export function generateFrame(fields: Record<string, unknown> = {}): Record<string, unknown> {
  const frame: Record<string, unknown> = { type: 'generate', prompt: 'a lighthouse at dusk', model: 'tiny-sd', tier: 'fast', width: 64, height: 64, ...fields };
  for (const [k, v] of Object.entries(frame)) if (v === undefined) delete frame[k];
  return frame;
}

let requestCounter = 0;
/** A request id unique within this process run. */
export function uniqueRequestId(label = 'req'): string {
  requestCounter++;
  return `${label}-${process.pid}-${Date.now().toString(36)}-${requestCounter}`;
}

/** A protocol client that records every frame it receives, for exact assertions. */
export class TestSocket {
  readonly frames: ServerFrame[] = [];
  private readonly waiters: { predicate: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }[] = [];
  private cursor = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => {
      const frame = JSON.parse(data.toString()) as ServerFrame;
      this.frames.push(frame);
      const i = this.waiters.findIndex((w) => w.predicate(frame));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w?.resolve(frame);
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(url: string, apiKey: string | null, options: ClientOptions = {}): Promise<TestSocket> {
    const ws = new WebSocket(url, { ...options, headers: apiKey === null ? {} : { Authorization: `Bearer ${apiKey}` } });
    const socket = new TestSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return socket;
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The next frame (after those already taken by `next`) that matches, waiting up to `timeoutMs`. */
  async next(predicate: (f: ServerFrame) => boolean = () => true, timeoutMs = 10_000): Promise<ServerFrame> {
    for (; this.cursor < this.frames.length; this.cursor++) {
      const f = this.frames[this.cursor];
      if (f && predicate(f)) {
        this.cursor++;
        return f;
      }
    }
    return new Promise<ServerFrame>((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (f: ServerFrame) => {
          clearTimeout(timer);
          this.cursor = this.frames.length;
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`No matching frame within ${timeoutMs} ms; received: ${JSON.stringify(this.frames).slice(0, 2000)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The next frame about `requestId` of the given type. */
  nextFor<T extends ServerFrame['type']>(requestId: string, type: T, timeoutMs?: number): Promise<Extract<ServerFrame, { type: T }>> {
    return this.next((f) => f.type === type && 'requestId' in f && f.requestId === requestId, timeoutMs) as Promise<
      Extract<ServerFrame, { type: T }>
    >;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.closed;
  }
}

/** Sends a valid frame and waits for its answer: proof that the connection still works after bad input. */
export async function assertConnectionUsable(socket: TestSocket): Promise<void> {
  // A cancel of a request that never existed always gets an answer, and starts no work.
  const requestId = uniqueRequestId('probe');
  socket.send({ type: 'cancel', requestId });
  const answer = await socket.nextFor(requestId, 'rejected');
  if (answer.code !== 'UNKNOWN_REQUEST') throw new Error(`Unexpected answer to the probe: ${JSON.stringify(answer)}`);
}
