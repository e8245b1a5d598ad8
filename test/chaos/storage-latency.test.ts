// Chaos, seed 001 `storage_latency`: every object-store operation of every process takes 500 ms more (the GPU
// workers' staging writes, storage's reads, writes and deletes, the gateway's image reads). Generation goes on, and
// every request still gets its images, exactly once, and they download.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertEachCompletedOnce,
  benchLoad,
  countOutcomes,
  reportExperiment,
  sendAcceptedBurst,
  useChaosStack,
} from './harness';

const LATENCY_MS = 500;

describe('storage_latency: +500 ms on every storage operation', () => {
  const chaos = useChaosStack({ ATELIER_CHAOS_STORAGE_LATENCY_MS: String(LATENCY_MS) });

  test('images are still delivered, each request exactly once, and they download', async () => {
    const { socket } = chaos;
    const started = Date.now();
    const ids = await sendAcceptedBurst(socket, 'slow-storage', 4);
    // bench:load's generator alongside: every one of its requests is stored through the slow store too.
    const load = await benchLoad(socket, 'slow-storage', 2, 5);
    assert.deepEqual(load.refused, [], 'nothing refused for slow storage');
    await assertEachCompletedOnce(socket, [...ids, ...load.accepted]);
    const elapsedMs = Date.now() - started;
    for (const id of ids) {
      const completed = socket.framesFor(id).find((f) => f.type === 'completed');
      const url = completed?.type === 'completed' ? completed.images[0]?.url : undefined;
      assert.ok(url, `${id} names its image`);
      const fetchStarted = Date.now();
      const res = await fetch(url);
      assert.equal(res.status, 200, `${url}: HTTP ${res.status}`);
      const fetchMs = Date.now() - fetchStarted;
      assert.ok(fetchMs >= LATENCY_MS, `the gateway read went through the slow store (${fetchMs} ms, ${url})`);
    }
    // Its recovery figure: the whole burst, sent to the last image delivered, with every storage call 500 ms slower.
    const all = [...ids, ...load.accepted];
    reportExperiment('storage_latency', { ...countOutcomes((id) => socket.framesFor(id), all), recoveryMs: elapsedMs });
  });
});
