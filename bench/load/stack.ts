// The stack under load: either a private one spawned exactly as `npm start` runs it (node dist/infra/start.js in a
// temporary data directory, on free ports, stopped with SIGINT at the end), or one the user started, found through
// its stack.json. The launcher is spawned, never imported: benches do not depend on infra/.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startOtlpSink } from './otlp-sink';
import { setTimeout as sleep } from 'node:timers/promises';
import { mixedCalibrationUsers } from './mixed-options';
import type { LoadOptions } from './options';
import { calibrationUsers } from './spike-options';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The parts of `<data dir>/stack.json` (written by the launcher, infra/stack-file.ts) that the bench reads. */
export interface StackFile {
  readonly launcherPid: number;
  readonly gateway: { readonly wsUrl: string; readonly apiKey: string; readonly httpUrl?: string };
  readonly temporal: { readonly address: string; readonly namespace: string; readonly metricsUrl: string | null };
  readonly processes: readonly { readonly name: string; readonly pid: number; readonly metricsUrl?: string }[];
  readonly env: Readonly<Record<string, string>>;
  /** The region whose task queues the stack serves (absent from stack files older than the field). */
  readonly region?: string;
}

export interface Stack {
  readonly mode: 'spawn' | 'attach';
  readonly file: StackFile;
  /** One API key per simulated user (attach mode may have fewer than users; they are reused). */
  readonly apiKeys: readonly string[];
  /** Stops what this bench started (nothing in attach mode). */
  stop(): Promise<void>;
  /**
   * On Ctrl-C: starts the spawned stack's shutdown now. A terminal's Ctrl-C reaches the launcher too, and the
   * launcher takes a second SIGINT more than 2 s after the first as "kill everything at once", so the one sent
   * here (within moments of the terminal's) is the only one it gets from us.
   */
  interrupt(): void;
}

const STARTUP_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 30_000;

export function readStackFile(file: string): StackFile {
  if (!existsSync(file)) {
    throw new Error(`no stack at ${file}: start one with \`npm start\`, or run without --attach to spawn one`);
  }
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<StackFile>;
  if (!parsed.gateway?.wsUrl || !parsed.temporal?.address || !Array.isArray(parsed.processes)) {
    throw new Error(`${file} is not a stack file (no gateway.wsUrl, temporal.address or processes)`);
  }
  return { ...parsed, env: parsed.env ?? {} } as StackFile;
}

export function userApiKeys(users: number): string[] {
  return Array.from({ length: users }, (_, i) => `bench-key-${i}`);
}

/**
 * API keys the run needs: one per user, and for the spike profile its calibration users' after them; the mixed
 * profile's users are its fast users, then its relax users, then its calibration users.
 */
export function stackUserCount(options: LoadOptions): number {
  const { spike, mixed, warmup } = options;
  const extra = spike
    ? calibrationUsers(spike, warmup)
    : mixed
      ? mixed.relaxUsers + mixedCalibrationUsers(mixed, warmup)
      : 0;
  return options.users + extra;
}

/** The profiles that run against the gateway's production admission caps. */
const productionCaps = (options: LoadOptions): boolean => options.spike !== undefined || options.mixed !== undefined;

/**
 * The gateway's caps: the defaults (100 new requests per user per minute, 50 in flight per user) would throttle the
 * standard profiles, which measure throughput, so those raise both. The spike profile is there to show the gateway
 * shedding load with its documented codes, and the mixed profile shows the relax lane under a flood real users could
 * send, so they set nothing and the stack runs with the production caps (or with what the caller's environment says,
 * which the report prints).
 */
function admissionEnvironment(options: LoadOptions): NodeJS.ProcessEnv {
  if (productionCaps(options)) return {};
  return { ATELIER_RATE_LIMIT_PER_MINUTE: '1000000', ATELIER_MAX_IN_FLIGHT_PER_USER: '100000' };
}

/** A TCP port nothing listens on now (the OS picks it; a race with another process is possible but rare). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * What watching costs is measured by running with it and without: `observe` on gives Prometheus (scraping every
 * process every 5 s) and OTLP traces sent to `otlpUrl`; off gives neither (the processes still serve /metrics).
 */
function observeEnvironment(
  options: LoadOptions,
  prometheusPort: number,
  otlpUrl: string | undefined,
): NodeJS.ProcessEnv {
  if (options.observe === 'off' || !otlpUrl) return { PROMETHEUS_PORT: '0', OTEL_TRACES_EXPORTER: 'none' };
  return {
    PROMETHEUS_PORT: String(prometheusPort),
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
    OTEL_TRACES_EXPORTER: 'otlp',
  };
}

function spawnEnvironment(
  options: LoadOptions,
  dataDir: string,
  ports: number[],
  otlpUrl: string | undefined,
): NodeJS.ProcessEnv {
  const [temporal, redis, gateway, prometheus] = ports as [number, number, number, number];
  const keys = userApiKeys(stackUserCount(options)).map((key, i) => `${key}:bench-user-${i}`);
  return {
    ...process.env,
    ATELIER_DATA_DIR: dataDir,
    TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
    TEMPORAL_UI_PORT: '0',
    REDIS_URL: `redis://127.0.0.1:${redis}`,
    ATELIER_GATEWAY_PORT: String(gateway),
    ATELIER_GPU_TYPES: options.gpuTypes.join(','),
    ATELIER_SIM_SPEEDUP: String(options.simSpeedup),
    ATELIER_API_KEYS: keys.join(','),
    ...admissionEnvironment(options),
    LOG_LEVEL: 'warn',
    NO_COLOR: '1',
    ...observeEnvironment(options, prometheus, otlpUrl),
  };
}

/** Starts `node dist/infra/start.js` and resolves once it has written stack.json. */
export async function spawnStack(options: LoadOptions, say: (line: string) => void): Promise<Stack> {
  const launcher = path.join(REPO_ROOT, 'dist', 'infra', 'start.js');
  if (!existsSync(launcher)) throw new Error(`${launcher} is missing: run \`npm run build\` (npm run bench:load does)`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'atelier-bench-load-'));
  const logFile = path.join(dataDir, 'stack.log');
  const log = openSync(logFile, 'a');
  const sink = options.observe === 'on' ? await startOtlpSink() : undefined;
  const env = spawnEnvironment(options, dataDir, await distinctFreePorts(4), sink?.url);
  say(`starting a private stack in ${dataDir} (log: ${logFile})`);
  const child = spawn(process.execPath, [launcher], { cwd: REPO_ROOT, env, stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // If the bench dies without stopping it, the launcher still gets its signal (and stops its own children).
  const onExit = (): void => void child.kill('SIGINT');
  process.once('exit', onExit);
  let interrupted = false;
  const interrupt = (): void => {
    if (!interrupted) child.kill('SIGINT');
    interrupted = true;
  };
  const stop = async (): Promise<void> => {
    process.off('exit', onExit);
    await stopChild(child, exited, interrupted);
    if (sink)
      say(`traces exported during the run: ${sink.received.requests} OTLP requests, ${sink.received.bytes} bytes`);
    await sink?.close();
    if (options.keepData) say(`kept ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const file = await waitForStackFile(path.join(dataDir, 'stack.json'), child);
    return { mode: 'spawn', file, apiKeys: userApiKeys(stackUserCount(options)), stop, interrupt };
  } catch (err) {
    await stopChild(child, exited, interrupted);
    await sink?.close();
    process.off('exit', onExit);
    say(`stack start-up failed; last lines of ${logFile}:\n${tail(logFile, 40)}`);
    throw err;
  }
}

async function waitForStackFile(file: string, child: ChildProcess): Promise<StackFile> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the stack exited during start-up (${child.signalCode ?? `exit code ${child.exitCode}`})`);
    }
    if (existsSync(file)) return readStackFile(file);
    await sleep(250);
  }
  throw new Error(`no ${file} after ${STARTUP_TIMEOUT_MS / 1000} s`);
}

/** SIGINT (the launcher's ordered shutdown) unless sent already, then SIGKILL if it has not exited within 30 s. */
async function stopChild(child: ChildProcess, exited: Promise<void>, signalled: boolean): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (!signalled) child.kill('SIGINT');
  const timer = sleep(STOP_GRACE_MS, 'timeout' as const);
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Uses a running stack; says what it runs with and how to start one that suits the benchmark. */
export function attachStack(file: string, options: LoadOptions, say: (line: string) => void): Stack {
  const stackFile = readStackFile(path.resolve(file));
  try {
    process.kill(stackFile.launcherPid, 0);
  } catch {
    throw new Error(`${file}: its launcher (pid ${stackFile.launcherPid}) is not running; start it with npm start`);
  }
  const env = stackFile.env;
  say(
    `attached to ${file}: ATELIER_SIM_SPEEDUP=${env.ATELIER_SIM_SPEEDUP ?? '1 (default)'}, ` +
      `ATELIER_RATE_LIMIT_PER_MINUTE=${env.ATELIER_RATE_LIMIT_PER_MINUTE ?? '100 (default)'}, ` +
      `ATELIER_MAX_IN_FLIGHT_PER_USER=${env.ATELIER_MAX_IN_FLIGHT_PER_USER ?? '50 (default)'}, ` +
      `ATELIER_GPU_TYPES=${env.ATELIER_GPU_TYPES ?? '(default)'}`,
  );
  // The spike and mixed profiles want the production caps; only the throughput profiles are misled by them.
  if (!productionCaps(options) && Number(env.ATELIER_RATE_LIMIT_PER_MINUTE ?? 100) < 100_000) {
    say('  warning: at this rate limit the gateway will answer most of the load with RATE_LIMITED');
  }
  if (!productionCaps(options) && Number(env.ATELIER_MAX_IN_FLIGHT_PER_USER ?? 50) < 10_000) {
    say('  warning: at this in-flight cap the gateway will answer bursts with IN_FLIGHT_LIMIT');
  }
  const keys = userApiKeys(stackUserCount(options)).map((key, i) => `${key}:bench-user-${i}`);
  const caps = productionCaps(options)
    ? ''
    : 'ATELIER_RATE_LIMIT_PER_MINUTE=1000000 ATELIER_MAX_IN_FLIGHT_PER_USER=100000 ';
  say(
    `  for benchmarking start it with: ATELIER_SIM_SPEEDUP=${options.simSpeedup} ${caps}` +
      `ATELIER_API_KEYS=${keys.join(',')} npm start`,
  );
  return {
    mode: 'attach',
    file: stackFile,
    apiKeys: attachKeys(stackFile, options),
    stop: () => Promise.resolve(),
    interrupt: () => undefined,
  };
}

/**
 * --api-key when given; else the keys the stack was started with (ATELIER_API_KEYS in its env), since the
 * `gateway.apiKey` it records is the dev key, which such a stack no longer accepts; else that dev key.
 */
function attachKeys(file: StackFile, options: LoadOptions): string[] {
  if (options.apiKeys) return [...options.apiKeys];
  const configured = (file.env.ATELIER_API_KEYS ?? '')
    .split(',')
    .map((pair) => pair.split(':')[0]?.trim() ?? '')
    .filter((key) => key.length > 0);
  return configured.length > 0 ? configured.slice(0, stackUserCount(options)) : [file.gateway.apiKey];
}
