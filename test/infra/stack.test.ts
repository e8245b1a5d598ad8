// The launcher behind `npm start` and the end-to-end tests: it brings every process up and reports where to
// connect, restarts a crashed child, shuts down in order on Ctrl-C (gateway, then workers, then Redis and
// Temporal), and leaves no process behind even when it is killed outright.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../infra/ports';
import { repoRoot, startStack, type StackHandle } from '../../infra/test-stack';

const root = repoRoot();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Collects a child's stdout lines and resolves `waitForLine` when one matches. */
function lineReader(child: ChildProcess): {
  lines: string[];
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
} {
  const lines: string[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  return {
    lines,
    async waitForLine(pattern, timeoutMs) {
      let found: string | undefined;
      await waitUntil(
        `a line matching ${pattern}`,
        () => (found = lines.find((l) => pattern.test(l))) !== undefined,
        timeoutMs,
      );
      return found as string;
    },
  };
}

/** The /metrics URL of each process, by name, from the banner lines `npm start` printed. */
function printedMetricsUrls(lines: readonly string[]): Map<string, string> {
  const banner = lines.slice(lines.findIndex((l) => l.includes('Atelier is up.')));
  const printed = new Map<string, string>();
  const end = banner.findIndex((l) => l.includes('Press Ctrl-C'));
  for (const line of banner.slice(0, end)) {
    const match = /^\s+(?:Metrics\s+)?(gateway|control-worker|gpu-worker\[\w+\])\s+(http:\/\/\S+\/metrics)$/.exec(line);
    if (match?.[1] && match[2]) printed.set(match[1], match[2]);
  }
  return printed;
}

before(() => {
  assert.ok(existsSync(path.join(root, 'dist', 'infra', 'start.js')), 'dist/ is built (npm test builds it)');
});

describe('npm start (dist/infra/start.js)', () => {
  let dataDir: string;
  let stack: ChildProcess | undefined;

  before(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-npm-start-'));
  });
  after(async () => {
    if (stack && stack.exitCode === null && stack.signalCode === null) stack.kill('SIGKILL');
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('prints where to connect once everything is up, and on SIGINT stops gateway, then workers, then Redis and Temporal', async () => {
    const [temporalPort, uiPort, redisPort, gatewayPort, prometheusPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    stack = spawn(process.execPath, [path.join(root, 'dist', 'infra', 'start.js')], {
      cwd: root,
      env: {
        ...process.env,
        NODE_TEST_CONTEXT: undefined,
        NO_COLOR: '1',
        LOG_LEVEL: 'info',
        ATELIER_DATA_DIR: dataDir,
        TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
        TEMPORAL_UI_PORT: String(uiPort),
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        ATELIER_GATEWAY_PORT: String(gatewayPort),
        PROMETHEUS_PORT: String(prometheusPort),
        ATELIER_GPU_TYPES: 'a10g',
        ATELIER_SHUTDOWN_TIMEOUT_MS: '15000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      stack?.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const out = lineReader(stack);

    await out.waitForLine(/Atelier is up\./, 120_000);
    assert.ok(
      out.lines.some((l) => l.includes(`ws://127.0.0.1:${gatewayPort}/v1/ws`)),
      'WebSocket URL printed',
    );
    assert.ok(
      out.lines.some((l) => l.includes(`http://127.0.0.1:${gatewayPort}`)),
      'HTTP base printed',
    );
    assert.ok(
      out.lines.some((l) => /API key\s+dev-key/.test(l)),
      'dev API key printed',
    );
    const uiLine = await out.waitForLine(/Temporal Web UI\s+http:\/\//, 1_000);
    assert.ok(uiLine.includes(`http://127.0.0.1:${uiPort}`), uiLine);

    assert.equal((await fetch(`http://127.0.0.1:${gatewayPort}/readyz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${uiPort}/`)).status, 200, 'the Temporal Web UI answers');
    // Data lands in the configured directory: Temporal's SQLite file and Redis's append-only file.
    assert.ok(existsSync(path.join(dataDir, 'temporal', 'temporal.db')));
    assert.ok(existsSync(path.join(dataDir, 'redis', 'appendonlydir')));

    const childPids = await descendants(stack.pid as number);
    assert.ok(
      childPids.length >= 5,
      `temporal, redis, control worker, GPU worker and gateway run: ${childPids.join(',')}`,
    );

    // Temporal's Prometheus endpoint is printed and answers.
    const metricsLine = await out.waitForLine(/Temporal metrics\s+http:\/\//, 1_000);
    const metricsUrl = /(http:\/\/\S+\/metrics)/.exec(metricsLine)?.[1] ?? '';
    assert.match(await (await fetch(metricsUrl)).text(), /^# (HELP|TYPE) /m, `${metricsUrl} serves Prometheus text`);

    // Every process's Prometheus endpoint is printed, one line each, and answers: the gateway on its HTTP port, each
    // worker on a health port of its own.
    const printed = printedMetricsUrls(out.lines);
    assert.deepEqual(
      [...printed.keys()].sort(),
      ['control-worker', 'gateway', 'gpu-worker[a10g]'],
      out.lines.join('\n'),
    );
    assert.equal(printed.get('gateway'), `http://127.0.0.1:${gatewayPort}/metrics`);
    for (const [name, url] of printed) {
      await waitUntil(
        `${name}'s ${url} to answer`,
        async () => (await fetch(url).catch(() => null))?.ok === true,
        30_000,
      );
      const role = name.replace(/\[.*/, '');
      const text = await (await fetch(url)).text();
      assert.match(text, new RegExp(`^atelier_event_loop_lag_seconds\\{process="${role}"`, 'm'), url);
    }

    // stack.json says where everything is and which processes run, with the pids that really are our children.
    const stackFile = JSON.parse(await fs.readFile(path.join(dataDir, 'stack.json'), 'utf8')) as {
      gateway: { wsUrl: string };
      temporal: { metricsUrl: string };
      processes: { name: string; pid: number; metricsUrl?: string }[];
    };
    assert.equal(stackFile.gateway.wsUrl, `ws://127.0.0.1:${gatewayPort}/v1/ws`);
    assert.equal(stackFile.temporal.metricsUrl, metricsUrl);
    assert.deepEqual(stackFile.processes.map((p) => p.name).sort(), [
      'control-worker',
      'gateway',
      'gpu-worker[a10g]',
      'prometheus',
      'redis',
      'temporal',
    ]);
    for (const { name, pid } of stackFile.processes)
      assert.ok(childPids.includes(pid), `${name} pid ${pid} is a child`);
    const recorded = Object.fromEntries(stackFile.processes.map((p) => [p.name, p.metricsUrl]));
    assert.deepEqual(recorded, {
      ...Object.fromEntries(printed),
      temporal: metricsUrl,
      redis: undefined,
      prometheus: undefined,
    });

    // Prometheus runs, printed in the banner, and scrapes every process that serves metrics: all targets up.
    const prometheusLine = await out.waitForLine(/Prometheus\s+http:\/\//, 1_000);
    assert.ok(prometheusLine.includes(`http://127.0.0.1:${prometheusPort}`), prometheusLine);
    let health: Record<string, string> = {};
    await waitUntil(
      'every Prometheus target to be up',
      async () => {
        const res = (await (await fetch(`http://127.0.0.1:${prometheusPort}/api/v1/targets`)).json()) as {
          data: { activeTargets: { labels: { process: string }; health: string }[] };
        };
        health = Object.fromEntries(res.data.activeTargets.map((t) => [t.labels.process, t.health]));
        return Object.keys(health).length === 4 && Object.values(health).every((h) => h === 'up');
      },
      60_000,
    ).catch((err: unknown) => assert.fail(`${String(err)}: ${JSON.stringify(health)}`));
    assert.deepEqual(Object.keys(health).sort(), ['control-worker', 'gateway', 'gpu-worker[a10g]', 'temporal']);

    stack.kill('SIGINT');
    const exit = await exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(existsSync(path.join(dataDir, 'stack.json')), false, 'stack.json is removed on stop');
    for (const pid of childPids) assert.equal(isAlive(pid), false, `process ${pid} outlived npm start`);

    const at = (message: string): number => {
      const index = out.lines.findIndex((l) => l.includes(`"msg":"${message}"`));
      assert.ok(index >= 0, `log line "${message}" missing`);
      return index;
    };
    assert.ok(at('gateway stopped') < at('stopping control-worker'), 'the gateway stops before the workers');
    assert.ok(at('gateway stopped') < at('stopping gpu-worker[a10g]'));
    assert.ok(at('control-worker stopped') < at('stopping redis'), 'workers drain before Redis goes');
    assert.ok(at('gpu-worker[a10g] stopped') < at('stopping redis'));
    assert.ok(at('redis stopped') < at('stopping temporal'), 'Temporal goes last');
  });
});

/** Pids of every descendant of `pid` (children run in their own process groups, so walk the parent links). */
async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const entries = await fs.readdir('/proc');
  const parentOf = new Map<number, number>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (after the parenthesised command, which may contain spaces) is the parent pid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // Exited while we looked.
    }
  }
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift() as number;
    for (const [child, parent] of parentOf) {
      if (parent === current) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

describe('startStack', () => {
  let stack: StackHandle;
  before(async () => {
    stack = await startStack({ gpuTypes: ['a10g'] });
  });
  after(async () => {
    await stack?.stop();
  });

  test('restarts a child that crashes, and the gateway is ready again', async () => {
    const before = stack.children().find((c) => c.name === 'gateway')?.pid;
    assert.ok(before);
    stack.killChild('gateway', 'SIGKILL');
    await waitUntil(
      'a new gateway process',
      () => {
        const now = stack.children().find((c) => c.name === 'gateway')?.pid;
        return now !== undefined && now !== before;
      },
      30_000,
    );
    await waitUntil(
      'the restarted gateway to be ready',
      async () => {
        try {
          return (await fetch(`${stack.gatewayHttpUrl}/readyz`)).status === 200;
        } catch {
          return false;
        }
      },
      30_000,
    );
  });

  test('stop() ends every child and removes the temporary data dir', async () => {
    const pids = stack
      .children()
      .map((c) => c.pid)
      .filter((p): p is number => p !== undefined);
    assert.ok(pids.length >= 5, JSON.stringify(stack.children()));
    await stack.stop();
    for (const pid of pids) assert.equal(isAlive(pid), false, `process ${pid} outlived stop()`);
    assert.equal(existsSync(stack.dataDir), false);
  });
});

describe('when the process that started the stack is killed outright', () => {
  test('every child of the stack goes too', async () => {
    const owner = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'test', 'infra', 'stack-subprocess.ts')],
      {
        cwd: root,
        env: { ...process.env, NODE_TEST_CONTEXT: undefined },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const out = lineReader(owner);
    let pids: number[] = [];
    try {
      const line = await out.waitForLine(/^\{"children"/, 120_000);
      const { children } = JSON.parse(line) as { children: { name: string; pid: number }[] };
      pids = children.map((c) => c.pid);
      assert.ok(pids.length >= 5 && pids.every(isAlive), line);
    } finally {
      owner.kill('SIGKILL');
    }
    // Native servers get SIGTERM from the kernel (parent-death signal); Node children notice within a second
    // and shut down gracefully.
    await waitUntil(`processes ${pids.join(',')} to exit`, () => pids.every((pid) => !isAlive(pid)), 60_000);
  });
});
