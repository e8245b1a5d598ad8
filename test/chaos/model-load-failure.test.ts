// Chaos, seed 001 `model_load_failure`: the first six loads of each model on every GPU worker fail checksum
// verification (ATELIER_CHAOS_MODEL_LOAD_FAILURES, as a corrupted registry copy would). Validation, from the seed:
// the circuit breakers trigger, and requests eventually succeed. Here:
// - the a10g worker fails the sdxl requests it holds with ModelCorrupted, leaves the task queue at the first one and
//   reloads the model while out; its reloads keep failing verification, so it is reported for replacement;
// - the failed runs and reloads open the per-model breaker (5 failures): the gateway refuses new sdxl requests with MODEL_CIRCUIT_OPEN and a
//   retryAfterMs, and a client that retries after it is served;
// - every accepted request is retried by its workflow (model-corruption path) and completes exactly once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertEachCompletedOnce, countOutcomes, reportExperiment, sendAcceptedBurst, useChaosStack } from './harness';

describe('model_load_failure: model loads fail verification', () => {
  const chaos = useChaosStack({ ATELIER_CHAOS_MODEL_LOAD_FAILURES: '6' });

  test('breakers open, new requests are refused with retryAfterMs, and every request eventually succeeds', async () => {
    const { socket, stack } = chaos;
    const ids = await sendAcceptedBurst(socket, 'bad-model', 8);
    const firstFailure = Date.now();

    // The model breaker opens: a new sdxl request is refused with the documented code and when to retry.
    let refused: { retryAfterMs?: number } | undefined;
    const deadline = Date.now() + 60_000;
    for (let i = 0; !refused; i++) {
      assert.ok(Date.now() < deadline, 'the per-model breaker opened');
      const probe = await sendProbe(socket, `probe-${i}`);
      if (probe.type === 'rejected' && probe.code === 'QUEUE_FULL') {
        // Before the breaker opens, the fleet that stopped taking work can be past fast's 30 s admission bound:
        // a documented refusal too, with its own retryAfterMs. The breaker is checked before capacity, so once it
        // opens, its refusal is the one given.
        assert.ok((probe.retryAfterMs ?? 0) > 0, JSON.stringify(probe));
        await sleep(500);
      } else if (probe.type === 'rejected') {
        assert.equal(probe.code, 'MODEL_CIRCUIT_OPEN', JSON.stringify(probe));
        refused = probe;
      } else {
        ids.push(probe.requestId as string); // accepted before the breaker opened: it must complete like the rest
        await sleep(500);
      }
    }
    assert.ok((refused.retryAfterMs ?? 0) > 0 && (refused.retryAfterMs ?? 0) <= 60_000, JSON.stringify(refused));

    // The a10g worker reported itself for replacement: its breaker opened, or its reloads kept failing verification.
    const res = await fetch(`${stack.gatewayHttpUrl}/admin/workers`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    const fleet = (await res.json()) as { replacements: { workerId: string; reason: string }[] };
    assert.ok(
      fleet.replacements.some((r) => /a10g/.test(r.workerId) && /circuit breaker|failed to reload/.test(r.reason)),
      `reported for replacement: ${JSON.stringify(fleet.replacements)}`,
    );

    // A client that honours retryAfterMs is served once the breaker lets test traffic through.
    await sleep((refused.retryAfterMs ?? 0) + 500);
    const retried = await sendProbe(socket, 'after-retry-after');
    assert.equal(retried.type, 'accepted', JSON.stringify(retried));
    ids.push(retried.requestId as string);

    await assertEachCompletedOnce(socket, ids);
    const recoveryMs = Date.now() - firstFailure;
    reportExperiment('model_load_failure', { ...countOutcomes((id) => socket.framesFor(id), ids), recoveryMs });
  });
});

async function sendProbe(
  socket: ReturnType<typeof useChaosStack>['socket'],
  label: string,
): Promise<{ type: string; requestId?: unknown; code?: unknown; retryAfterMs?: number }> {
  const requestId = `${label}-${Date.now()}`;
  socket.send({
    type: 'generate',
    requestId,
    prompt: 'a quiet harbour, probe',
    model: 'sdxl',
    tier: 'fast',
    width: 512,
    height: 512,
    steps: 10,
  });
  return (await socket.waitFor(
    (f) => f.requestId === requestId && (f.type === 'accepted' || f.type === 'rejected'),
    60_000,
  )) as { type: string; requestId?: unknown; code?: unknown; retryAfterMs?: number };
}
