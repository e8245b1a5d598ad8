// Runs one test file under `node --test` in a process group of its own, with a wall-clock limit. Node's runner
// reports a file that passes --test-timeout, then sends it SIGTERM and waits for it to exit, forever if it does
// not. So past the limit we take a diagnostic report of every process in the group (Node's --report-on-signal:
// its JavaScript stack and the libuv handles that keep it alive), print what hung, and SIGKILL the group.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface TestCounts {
  tests: number;
  pass: number;
  fail: number;
  cancelled: number;
}

export interface FileOutcome {
  readonly file: string;
  readonly passed: boolean;
  readonly counts: TestCounts;
  /** Set when the file outlived its limit and was killed. */
  readonly killedAfterMs?: number;
}

export interface TestFileRun {
  readonly root: string;
  /** Path relative to root. */
  readonly file: string;
  readonly env: NodeJS.ProcessEnv;
  /** Flags before `--test`, e.g. `--import tsx`, timeouts, reporter. */
  readonly nodeArgs: readonly string[];
  readonly limitMs: number;
  /** Where the processes write their diagnostic reports. */
  readonly reportDir: string;
  /** Kills the file's processes at once (Ctrl-C on the runner). */
  readonly signal?: AbortSignal;
}

const COUNT_LINE = /^ℹ (tests|pass|fail|cancelled) (\d+)$/;

/**
 * Reads the spec reporter's closing counts (`ℹ tests 3`, `ℹ pass 3`...) line by line as output streams past: the
 * failures it reprints after them can be far longer than any tail worth keeping.
 */
export class CountsReader {
  readonly counts: TestCounts = { tests: 0, pass: 0, fail: 0, cancelled: 0 };
  private partial = '';

  push(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = COUNT_LINE.exec(line.trimEnd());
      if (m?.[1] && m[2]) this.counts[m[1] as keyof TestCounts] = Number(m[2]);
    }
  }
}

interface NodeReport {
  header?: { processId?: number; commandLine?: string[] };
  javascriptStack?: { message?: string; stack?: string[] };
  libuv?: { type: string; is_active?: boolean; is_referenced?: boolean; details?: string }[];
}

/** One paragraph per process: its command line, where its JavaScript was, and the handles that keep it alive. */
export function describeReports(reports: readonly NodeReport[]): string {
  return reports
    .map((r) => {
      const handles = (r.libuv ?? [])
        .filter((h) => h.is_active && h.is_referenced)
        .map((h) => (h.details ? `${h.type} (${h.details})` : h.type));
      const stack = (r.javascriptStack?.stack ?? []).slice(0, 8).map((l) => `      ${l.trim()}`);
      return [
        `  pid ${r.header?.processId ?? '?'}: ${(r.header?.commandLine ?? []).join(' ')}`,
        `    keeps it alive: ${handles.length > 0 ? handles.join(', ') : 'no referenced handle (busy in JavaScript or native code)'}`,
        ...(stack.length > 0 ? ['    JavaScript stack:', ...stack] : []),
      ].join('\n');
    })
    .join('\n');
}

async function readReports(dir: string): Promise<NodeReport[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const reports: NodeReport[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    try {
      reports.push(JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as NodeReport);
    } catch {
      // A report still being written when we read it: the others still say enough.
    }
  }
  return reports;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

export async function runTestFile(run: TestFileRun): Promise<FileOutcome> {
  const reportDir = await fs.mkdtemp(path.join(run.reportDir, 'file-'));
  const args = [
    ...run.nodeArgs,
    '--report-on-signal',
    `--report-directory=${reportDir}`,
    '--test',
    '--test-concurrency=1',
    run.file,
  ];
  const child = spawn(process.execPath, args, {
    cwd: run.root,
    env: run.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const counts = new CountsReader();
  // Decoded as a stream, so a character split between two chunks is never mangled.
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text: string) => {
    process.stdout.write(text);
    counts.push(text);
  });
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const abort = (): void => killGroup(child.pid, 'SIGKILL');
  run.signal?.addEventListener('abort', abort, { once: true });

  const startedAt = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const overLimit = new Promise<'limit'>((resolve) => (timer = setTimeout(() => resolve('limit'), run.limitMs)));
  const first = await Promise.race([exited, overLimit]);
  clearTimeout(timer);
  run.signal?.removeEventListener('abort', abort);
  if (first !== 'limit') {
    await fs.rm(reportDir, { recursive: true, force: true });
    return { file: run.file, passed: first === 0, counts: counts.counts };
  }

  killGroup(child.pid, 'SIGUSR2');
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const reports = await readReports(reportDir);
  killGroup(child.pid, 'SIGKILL');
  await exited;
  const killedAfterMs = Date.now() - startedAt;
  process.stderr.write(
    `\n[test] ${run.file} was still running after its ${Math.round(run.limitMs / 1000)} s limit; killed its processes.\n` +
      (reports.length > 0 ? `${describeReports(reports)}\n` : '  (no diagnostic report was written)\n'),
  );
  await fs.rm(reportDir, { recursive: true, force: true });
  return { file: run.file, passed: false, counts: counts.counts, killedAfterMs };
}
