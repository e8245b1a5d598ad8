// Starts this folder's worker threads (see inference/threads.ts for how sources and builds differ).
import type { Worker } from 'node:worker_threads';
import { spawnThread } from '../threads';

export function spawnWorker(name: 'inference-thread' | 'png-encoder-thread', workerData: unknown): Worker {
  return spawnThread(__dirname, name, workerData);
}
