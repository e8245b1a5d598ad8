// What the Temporal CLI and redis-server provisioning share: options and error type, the per-user cache directory,
// finding and checking executables, and running an installer with its output streamed to the log.
import { execFile, spawn } from 'node:child_process';
import { constants as fsConstants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export const execFileAsync = promisify(execFile);

export interface ProvisionOptions {
  /** Environment to read TEMPORAL_CLI_PATH, REDIS_SERVER_PATH, PATH, ATELIER_CACHE_DIR from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Progress output (build and download progress can take minutes). @default lines to stderr */
  log?: (line: string) => void;
  /**
   * Whether to install a missing binary (go install / download / apt-get). With false, a missing binary is an
   * error right away.
   * @default true
   */
  install?: boolean;
}

/**
 * Thrown by the resolvers when a binary is missing or broken and cannot be installed; the message says how to fix
 * it.
 */
export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const defaultLog = (line: string): void => {
  process.stderr.write(`[provision] ${line}\n`);
};

/** Cache directory for installed tools: ATELIER_CACHE_DIR, else `${XDG_CACHE_HOME:-~/.cache}/atelier`. */
export function atelierCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ATELIER_CACHE_DIR) return path.resolve(env.ATELIER_CACHE_DIR);
  const xdg =
    env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.length > 0 ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'atelier');
}

export const exeSuffix = process.platform === 'win32' ? '.exe' : '';

/** Returns why `binary` is not an executable file, or undefined when it is. */
export async function checkExecutable(binary: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(binary);
    if (!stat.isFile()) return 'not a file';
    await fs.access(binary, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES') return 'not executable';
    return errorMessage(err);
  }
}

/** First executable named `name` on env.PATH, or undefined. */
export async function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((d) => d.length > 0);
  const names =
    process.platform === 'win32'
      ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').map((ext) => name + ext.toLowerCase())
      : [name];
  for (const dir of dirs) {
    for (const candidate of names) {
      const full = path.join(dir, candidate);
      if (!(await checkExecutable(full))) return full;
    }
  }
  return undefined;
}

/** Runs a command to completion, passing each output line to `log`; rejects on a non-zero exit. */
export function runStreaming(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split(/\r?\n/)) {
        if (line.trim().length === 0) continue;
        log(line);
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        const how = signal ?? `code ${code}`;
        reject(new Error(`${path.basename(command)} ${args.join(' ')} exited with ${how}:\n${tail.join('\n')}`));
      }
    });
  });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
