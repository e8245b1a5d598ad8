// Chaos: SIGKILL the gateway while its clients have requests in flight (no 1001, no goodbye). The stack's supervisor
// starts it again on the same port; AtelierClient reconnects within its window and re-sends each pending request with
// its requestId, which re-attaches to the running workflow (its id is the requestId's). Every request must resolve
// exactly once, completed, and the client must see each event at most once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AtelierClient, type RequestEventFrame } from '../../client/client';
import { countOutcomes, reportExperiment, useChaosStack } from './harness';

describe('gateway kill with clients waiting', () => {
  const chaos = useChaosStack();

  test('each request resolves exactly once after the client reconnects and re-attaches', async () => {
    const { stack } = chaos;
    const client = await AtelierClient.connect({
      url: stack.gatewayWsUrl,
      apiKey: stack.apiKey,
      reconnectWindowMs: 60_000,
    });
    const frames = new Map<string, RequestEventFrame[]>();
    let sawProgress!: () => void;
    const progress = new Promise<void>((resolve) => (sawProgress = resolve));
    const ids = Array.from({ length: 4 }, (_, i) => `gw-kill-${Date.now()}-${i}`);
    const outcomes = ids.map((requestId, i) =>
      client.generate(
        {
          requestId,
          prompt: `a harbour at night, variation ${i}`,
          model: 'sdxl',
          tier: 'fast',
          width: 512,
          height: 512,
          steps: 10,
        },
        (f) => {
          frames.set(requestId, [...(frames.get(requestId) ?? []), f]);
          if (f.type === 'progress') sawProgress();
        },
      ),
    );
    await progress;
    const killedAt = Date.now();
    stack.killChild('gateway', 'SIGKILL');

    const results = await Promise.all(outcomes);
    const recoveryMs = Date.now() - killedAt;
    for (const [i, result] of results.entries()) {
      const id = ids[i] as string;
      assert.equal(result.type, 'completed', `${id}: ${JSON.stringify(result)}`);
      const seen = frames.get(id) ?? [];
      assert.equal(seen.filter((f) => f.type === 'completed' || f.type === 'failed').length, 1, `${id}: one terminal`);
      const seqs = seen.map((f) => f.seq);
      assert.equal(new Set(seqs).size, seqs.length, `${id}: no event twice (${seqs.join(',')})`);
    }
    await client.close();
    reportExperiment('gateway_kill', { ...countOutcomes((id) => frames.get(id) ?? [], ids), recoveryMs });
  });
});
