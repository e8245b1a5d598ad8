// Chaos: stop the Temporal dev server while requests are in flight and start it again on the same SQLite file, with
// bench:load's generator sending throughout (the gateway retries the starts until Temporal is back). Every accepted
// request must still reach its client's terminal event, with nothing lost and nothing doubled.
import { describe, test } from 'node:test';
import { countOutcomes, outageUnderLoad, reportExperiment, useChaosStack } from './harness';

describe('Temporal server restart with requests in flight', () => {
  const chaos = useChaosStack();

  test('no accepted request is lost', async () => {
    const { stack, socket } = chaos;
    const { ids, recoveryMs } = await outageUnderLoad(socket, 'restart', async () => {
      await stack.stopTemporal();
      await new Promise((r) => setTimeout(r, 3000));
      await stack.startTemporal();
    });
    reportExperiment('temporal_restart', { ...countOutcomes((id) => socket.framesFor(id), ids), recoveryMs });
  });
});
