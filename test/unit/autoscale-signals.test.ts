// What the autoscaler sees of a fleet (core/autoscale-signals.ts): backlogs summed over priorities, the wait a new
// request can expect (the backlog ahead of it over the drain rate), a queue with work and nothing draining it as a
// day's wait, utilization as the mean of the workers' duty cycles, and nothing invented for what was not measured.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fleetSignals, UNDRAINED_WAIT_S } from '../../core/autoscale-signals';

describe('fleet signals from queue samples and worker announcements', () => {
  test('backlogs, waits and utilization', () => {
    const s = fleetSignals({
      gpuType: 'a10g',
      replicas: 4,
      peakReplicas: 20,
      queue: { at: 0, backlogByPriority: { '1': 2, '3': 18 }, dispatchPerSecond: 2 },
      relaxLane: { at: 0, backlogByPriority: { '5': 300 }, dispatchPerSecond: 0.5 },
      dutyCycles: [0.2, 0.6],
    });
    assert.deepEqual(s, {
      gpuType: 'a10g',
      replicas: 4,
      peakReplicas: 20,
      queueDepth: 20,
      relaxDepth: 300,
      avgWaitS: 10,
      relaxAvgWaitS: 600,
      utilization: 0.4,
      busyGpus: 0.8,
    });
  });

  test('work waiting and nothing draining it: a day, finite (signals travel as JSON)', () => {
    const s = fleetSignals({
      gpuType: 'h100',
      replicas: 0,
      peakReplicas: 5,
      queue: { at: 0, backlogByPriority: { '1': 3 }, dispatchPerSecond: 0 },
      dutyCycles: [],
    });
    assert.equal(s.avgWaitS, UNDRAINED_WAIT_S);
    assert.equal(JSON.parse(JSON.stringify(s)).avgWaitS, UNDRAINED_WAIT_S);
  });

  test('not sampled, no announcement: empty queues, and no wait or utilization to act on', () => {
    const s = fleetSignals({ gpuType: 'a100', replicas: 2, peakReplicas: 12, dutyCycles: [] });
    assert.deepEqual(s, { gpuType: 'a100', replicas: 2, peakReplicas: 12, queueDepth: 0, relaxDepth: 0 });
  });
});
