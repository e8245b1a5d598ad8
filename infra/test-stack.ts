// The local stack for end-to-end and chaos tests: the same launcher as `npm start` (infra/stack.ts), on free
// ports, with a fresh temporary data directory, a headless Temporal dev server, a private Redis, and children that
// log at `warn`; what a child printed last comes with any start-up error.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../runtime/logger';
import { resolveOptions } from '../runtime/options';
import { freePort } from './ports';
import { launchStack, StackStartError, type StackHandle } from './stack';
import { STACK_OPTIONS, type StackOptions } from './stack-options';

export { repoRoot } from './repo-root';
export type { StackHandle } from './stack';

export interface StartStackOverrides extends Partial<StackOptions> {
  /** Extra environment for every child, applied last (e.g. `{ ATELIER_SIM_SPEEDUP: '50' }`). */
  env?: Record<string, string>;
  /** Receives each line a child prints. @default lines are kept only for error messages */
  onOutput?: (name: string, line: string) => void;
}

/** The options of a test stack: free ports, a headless Temporal, children at `warn`; `overrides` win. */
async function testStackOptions(overrides: Partial<StackOptions>, tempDir: string | undefined): Promise<StackOptions> {
  const options: StackOptions = {
    ...resolveOptions(STACK_OPTIONS, {}),
    dataDir: tempDir ?? overrides.dataDir ?? '.atelier',
    temporalAddress: `127.0.0.1:${await freePort()}`,
    temporalUiPort: 0,
    // No Prometheus unless a test asks for one (with a port).
    prometheusPort: 0,
    redisUrl: `redis://127.0.0.1:${await freePort()}`,
    // Any free port, picked by the launcher once Temporal and Redis listen (infra/stack.ts).
    gatewayPort: 0,
    logLevel: 'warn',
    readyTimeoutMs: 60_000,
    shutdownTimeoutMs: 10_000,
    ...overrides,
  };
  return options;
}

/**
 * The stack for end-to-end tests: free ports, a fresh temporary data directory (removed by stop()), a headless
 * Temporal dev server and a private Redis, children logging at `warn`. Anything in `overrides` wins; environment
 * variables are not read (a developer's ATELIER_GATEWAY_PORT must not steer a test). `gatewayPort: 0` picks a
 * free port.
 */
export async function startStack(overrides: StartStackOverrides = {}): Promise<StackHandle> {
  // A free port is free when picked, not when bound: another test process (a Temporal dev server's own internal ports,
  // say) can take it in between. Ports picked here are picked again, twice at most; a port a test chose is not.
  const portsOurs = overrides.redisUrl === undefined && overrides.temporalAddress === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(overrides);
    } catch (err) {
      if (!portsOurs || attempt >= 3 || !portTaken(err)) throw err;
    }
  }
}

/** Whether a start failed because a port picked as free was taken before it was bound. */
function portTaken(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (/address already in use|EADDRINUSE/i.test(e.message)) return true;
  }
  return false;
}

async function startStackOnce(overrides: StartStackOverrides): Promise<StackHandle> {
  const { env: extraEnv = {}, onOutput, ...optionOverrides } = overrides;
  const tempDir =
    optionOverrides.dataDir === undefined ? await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-stack-')) : undefined;
  const options = await testStackOptions(optionOverrides, tempDir);
  const log = createLogger('stack', { test: true });
  log.level = process.env.LOG_LEVEL ?? 'warn';
  const tails = new Map<string, string[]>();
  const remember = (name: string, line: string): void => {
    const tail = tails.get(name) ?? [];
    tail.push(line);
    if (tail.length > 40) tail.shift();
    tails.set(name, tail);
    onOutput?.(name, line);
    if (process.env.ATELIER_STACK_LOGS === '1') process.stderr.write(`${name} | ${line}\n`);
  };
  let handle: StackHandle;
  try {
    handle = await launchStack(options, { log, extraEnv, onOutput: remember });
  } catch (err) {
    if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
    if (err instanceof StackStartError && tails.size > 0) {
      const output = [...tails].map(([name, lines]) => `--- ${name}\n${lines.join('\n')}`).join('\n');
      throw new StackStartError(`${err.message}\nRecent output of the stack's processes:\n${output}`, { cause: err });
    }
    throw err;
  }
  const stop = handle.stop;
  let stopped: Promise<void> | undefined;
  return Object.assign(handle, {
    stop: () =>
      (stopped ??= (async () => {
        await stop();
        if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
      })()),
  });
}
