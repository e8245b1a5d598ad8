// Chaos: stop the Temporal dev server while requests are in flight and start it again on the same SQLite file.
// Every accepted request must still reach its client's terminal event, with nothing lost and nothing doubled.
import { describe, test } from 'node:test';
import {
  assertEachCompletedOnce,
  benchLoad,
  countOutcomes,
  reportExperiment,
  sendAcceptedBurst,
  useChaosStack,
} from './harness';

describe('Temporal server restart with requests in flight', () => {
  const chaos = useChaosStack();

  test('no accepted request is lost', async () => {
    const { stack, socket } = chaos;
    const ids = await sendAcceptedBurst(socket, 'restart', 6, (i) => (i % 2 ? 'relax' : 'fast'));
    await socket.waitFor((f) => f.type === 'progress', 60_000);

    // bench:load's generator keeps sending through the outage: the gateway retries the starts until Temporal is back.
    const load = benchLoad(socket, 'restart', 1, 8);
    const stoppedAt = Date.now();
    await stack.stopTemporal();
    await new Promise((r) => setTimeout(r, 3000));
    await stack.startTemporal();

    ids.push(...(await load).accepted);
    await assertEachCompletedOnce(socket, ids);
    reportExperiment('temporal_restart', {
      ...countOutcomes((id) => socket.framesFor(id), ids),
      recoveryMs: Date.now() - stoppedAt,
    });
  });
});
