// Starts the inference engine's worker threads from their entry file. Compiled builds run `<entry>.js`. Under tsx
// (tests, benches) the TypeScript source runs: tsx's loader hooks do not carry into worker threads, so the thread
// registers tsx's CommonJS hook itself before loading the entry.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** A thread running `<dir>/<entry>.js` (or `.ts` from sources), with `workerData`. */
export function spawnThread(dir: string, entry: string, workerData?: unknown): Worker {
  const js = join(dir, `${entry}.js`);
  if (existsSync(js)) return new Worker(js, { workerData });
  const ts = join(dir, `${entry}.ts`);
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(ts)});`, { eval: true, workerData });
}
