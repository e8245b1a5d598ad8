// Child processes of the local stack and the test bootstrap (Temporal dev server, redis-server, workers, gateway):
// spawning them so they die with us, reading their output line by line, and stopping them with SIGTERM first and
// SIGKILL after a grace period.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export interface ServiceProcessOptions {
  /** Name used in log prefixes and error messages, e.g. `temporal`, `gpu-worker[a10g]`. */
  name: string;
  command: string;
  args: readonly string[];
  /** Environment of the child. @default process.env */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Receives every line the child writes, without the trailing newline. @default lines are dropped */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Put the child in its own process group, so a Ctrl-C in the terminal reaches only the launcher, which then
   * shuts children down in order (gateway before workers before Redis and Temporal). The child is still tied
   * to our life: see {@link dieWithParentPrefix} and {@link childLifelineArgs}.
   * @default false
   */
  ownProcessGroup?: boolean;
}

/** How a child process ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves once the process has exited (never rejects; a spawn failure resolves with code null). */
  readonly exited: Promise<ProcessExit>;
  /** True once the process has exited. */
  readonly hasExited: boolean;
  /** The last lines of output, for error messages when a child dies during start-up. */
  outputTail(lines?: number): string;
  /**
   * Sends `signal` (default SIGTERM) and waits up to `graceMs` (default 10 000 ms) for the exit, then SIGKILL.
   * Resolves once the process is gone. Safe to call more than once.
   */
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<ProcessExit>;
}

const TAIL_LINES = 60;

/** Every child spawned through spawnService that has not exited yet, with whether it leads its own group. */
const liveChildren = new Set<ChildProcess>();
const groupLeaders = new WeakSet<ChildProcess>();

/**
 * Last-resort cleanup for `process.on('exit')`: SIGKILLs every child (and its process group) that is still
 * running. Synchronous, because nothing asynchronous runs after 'exit'.
 */
export function killAllChildrenSync(): void {
  for (const child of liveChildren) signalChild(child, 'SIGKILL', groupLeaders.has(child));
}

let exitHookInstalled = false;
/** Installs {@link killAllChildrenSync} as an exit hook, once per process. */
export function killChildrenOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllChildrenSync);
}

/**
 * Spawns a long-running child. Its exit is reported through `exited`, never as an unhandled 'error' event (a
 * missing binary ends the same way as a crash: with the reason in `outputTail()`).
 */
export function spawnService(opts: ServiceProcessOptions): ServiceProcess {
  const tail = lineTail();
  const child = spawn(opts.command, [...opts.args], {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.ownProcessGroup ?? false,
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    const readable = child[stream];
    if (!readable) continue;
    splitLines(readable, (line) => {
      tail.remember(line);
      opts.onLine?.(line, stream);
    });
  }
  liveChildren.add(child);
  if (opts.ownProcessGroup) groupLeaders.add(child);
  const exit = trackExit(child, (reason) => tail.remember(`${opts.name}: failed to start ${opts.command}: ${reason}`));
  const stop = stopper(child, exit, opts.ownProcessGroup ?? false, (line) => tail.remember(`${opts.name}: ${line}`));

  return {
    name: opts.name,
    process: child,
    exited: exit.exited,
    get hasExited() {
      return exit.info() !== undefined;
    },
    outputTail: (lines = 20) => tail.last(lines),
    stop,
  };
}

/** The last {@link TAIL_LINES} lines a child printed (and what we noted about it), oldest first. */
function lineTail(): { remember(line: string): void; last(lines: number): string } {
  const lines: string[] = [];
  return {
    remember(line) {
      lines.push(line);
      if (lines.length > TAIL_LINES) lines.shift();
    },
    last: (count) => lines.slice(-count).join('\n'),
  };
}

/**
 * Calls `onLine` with each line of `readable`, without its newline. A line split across chunks is held back until
 * it is complete; an unterminated last line is delivered when the stream ends.
 */
function splitLines(readable: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  readable.setEncoding('utf8');
  let partial = '';
  readable.on('data', (chunk: string) => {
    const lines = (partial + chunk).split(/\r?\n/);
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  readable.on('end', () => {
    if (partial.length > 0) {
      onLine(partial);
      partial = '';
    }
  });
}

interface ExitTracker {
  /** Resolves on exit, or right away after a spawn failure; never rejects. */
  readonly exited: Promise<ProcessExit>;
  /** How the child ended, or undefined while it runs. */
  info(): ProcessExit | undefined;
}

/** Follows the child to its end and takes it off {@link liveChildren} then. */
function trackExit(child: ChildProcess, onSpawnError: (reason: string) => void): ExitTracker {
  let exitInfo: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('error', (err) => {
      onSpawnError(err.message);
      // 'exit' does not follow a spawn failure; do not wait for it.
      if (child.pid === undefined) {
        liveChildren.delete(child);
        exitInfo = { code: null, signal: null };
        resolve(exitInfo);
      }
    });
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  return { exited, info: () => exitInfo };
}

/** {@link ServiceProcess.stop} for `child`: one shutdown however often it is called, SIGKILL after the grace. */
function stopper(
  child: ChildProcess,
  exit: ExitTracker,
  group: boolean,
  note: (line: string) => void,
): ServiceProcess['stop'] {
  let stopping: Promise<ProcessExit> | undefined;
  return (stopOpts = {}) => {
    const exitInfo = exit.info();
    if (exitInfo) return Promise.resolve(exitInfo);
    stopping ??= (async () => {
      const signal = stopOpts.signal ?? 'SIGTERM';
      const graceMs = stopOpts.graceMs ?? 10_000;
      signalChild(child, signal, group);
      if (await timedOut(exit.exited, graceMs)) {
        note(`still running ${graceMs} ms after ${signal}; sending SIGKILL`);
        signalChild(child, 'SIGKILL', group);
      }
      return exit.exited;
    })();
    return stopping;
  };
}

/** True when `ms` pass before `promise` settles; the timer does not outlive the race. */
async function timedOut(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    promise.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), ms);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

/** Signals the child, or its whole process group when it leads one (so grandchildren go too). */
function signalChild(child: ChildProcess, signal: NodeJS.Signals, group: boolean): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (group && process.platform !== 'win32') process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // Already gone between the check and the kill.
  }
}

/**
 * Command prefix that makes a native binary (temporal, redis-server) receive SIGTERM when the spawning process
 * dies, even by SIGKILL, so a crashed launcher or test run leaves no server holding its port. Uses util-linux
 * `setpriv --pdeathsig`, which sets the flag and then execs the binary (same pid). Empty where unavailable
 * (macOS, minimal images): there the launcher's own exit handlers are the only cleanup.
 */
export function dieWithParentPrefix(): string[] {
  if (process.platform !== 'linux') return [];
  for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
    if (existsSync(candidate)) return [candidate, '--pdeathsig', 'SIGTERM', '--'];
  }
  return [];
}

/**
 * Node arguments that preload the lifeline (dist/infra/child-lifeline.js) into a Node child, so that it shuts
 * itself down when its parent disappears. Empty when the project is not built (the child then relies on the
 * parent's exit handlers).
 */
export function childLifelineArgs(repoRoot: string): string[] {
  const lifeline = path.join(repoRoot, 'dist', 'infra', 'child-lifeline.js');
  return existsSync(lifeline) ? ['--require', lifeline] : [];
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
