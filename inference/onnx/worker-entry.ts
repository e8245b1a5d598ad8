// Starts this folder's worker threads. Compiled builds run `<name>.js`. Under tsx (tests, bench) the TypeScript
// source runs: tsx's loader hooks do not carry into worker threads, so the thread registers tsx's CommonJS hook
// itself before loading the entry.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

export function spawnWorker(name: 'inference-thread' | 'png-encoder-thread', workerData: unknown): Worker {
  const js = join(__dirname, `${name}.js`);
  if (existsSync(js)) return new Worker(js, { workerData });
  const ts = join(__dirname, `${name}.ts`);
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(ts)});`, { eval: true, workerData });
}
