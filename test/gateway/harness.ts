// Shared set-up of the gateway tests: a real Temporal dev server (TestWorkflowEnvironment.createLocal with
// Atelier's search attributes), a real Redis with a unique key prefix, a filesystem object store in a temporary
// directory, and the gateway itself started in-process on a free port. `TestSocket` (test/helpers/ws-client.ts,
// re-exported here) is the raw protocol client the tests assert exact frames with.
import { after, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createTemporalTestEnv } from '../helpers/temporal';
import { createLogger } from '../../runtime/logger';
import { FsObjectStore } from '../../runtime/object-store';
import { resolveGatewayOptions, type GatewayOptions } from '../../gateway/options';
import { createGateway, type Gateway, type GatewayAddress, type GatewayDeps } from '../../gateway/server';
import { testRedis, type TestRedis } from '../helpers/redis';
import { TestSocket } from '../helpers/ws-client';

export { TestSocket };

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
export async function startTestGateway(
  overrides: Partial<GatewayOptions>,
  deps: GatewayDeps = {},
): Promise<TestGateway> {
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
    // Its workers are in-process test workers that do not announce themselves in Redis.
    checkRedisPrefix: false,
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

/**
 * The usual set-up of a gateway test file: a Temporal dev server and a gateway on it (no workers, so accepted requests
 * stay in flight), started before the file's tests and stopped after; the returned object is filled in by then.
 */
export function useGatewayOnTemporal(overrides: Partial<GatewayOptions> = {}): {
  env: TestWorkflowEnvironment;
  gw: TestGateway;
} {
  const parts = {} as { env: TestWorkflowEnvironment; gw: TestGateway };
  before(async () => {
    parts.env = await startTemporal();
    parts.gw = await startTestGateway(overrides, { temporalClient: parts.env.client });
  });
  after(async () => {
    await parts.gw?.stop();
    await parts.env?.teardown();
  });
  return parts;
}

/** A minimal valid generate frame for the tiny test model; fields can be overridden or deleted (undefined). */
export function generateFrame(fields: Record<string, unknown> = {}): Record<string, unknown> {
  const frame: Record<string, unknown> = {
    type: 'generate',
    prompt: 'a lighthouse at dusk',
    model: 'tiny-sd',
    tier: 'fast',
    width: 64,
    height: 64,
    ...fields,
  };
  for (const [k, v] of Object.entries(frame)) if (v === undefined) delete frame[k];
  return frame;
}

let requestCounter = 0;
/** A request id unique within this process run. */
export function uniqueRequestId(label = 'req'): string {
  requestCounter++;
  return `${label}-${process.pid}-${Date.now().toString(36)}-${requestCounter}`;
}

/** Sends a valid frame and waits for its answer: proof that the connection still works after bad input. */
export async function assertConnectionUsable(socket: TestSocket): Promise<void> {
  // A cancel of a request that never existed always gets an answer, and starts no work.
  const requestId = uniqueRequestId('probe');
  socket.send({ type: 'cancel', requestId });
  const answer = await socket.nextFor(requestId, 'rejected');
  if (answer.code !== 'UNKNOWN_REQUEST') throw new Error(`Unexpected answer to the probe: ${JSON.stringify(answer)}`);
}
