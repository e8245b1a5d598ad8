// Replays every recorded history (test/replay/histories, written by record-histories.ts) against the current
// workflow code, bundled exactly as production bundles it (workers/workflow-bundle.ts: same options, same
// interceptors). A change that would make an in-flight request's workflow take a different path on replay
// (reordered or new activity calls, different routing for the same request) fails here: version it with
// `patched()` instead.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { BUNDLE_VARIANTS, bundleGenerationWorkflows } from '../../workers/workflow-bundle';
import { tracingWorkerOptions } from '../../workers/worker-tracing';
import { historyFromJsonText } from './history-json';

const HISTORIES_DIR = path.join(__dirname, 'histories');
/** The scenarios record-histories.ts records; each version's folder must have them all, so a lost one is noticed. */
const EXPECTED = ['cancel', 'model-unavailable', 'multi-image', 'pending-safety', 'retry', 'success', 'unsafe'];
/** One folder per workflow version: before any patch, then each patch's id, with the scenarios added by it. */
const VERSIONS: Record<string, readonly string[]> = {
  classic: EXPECTED,
  // fleet-failover: the GPU step's bounded wait moving a request on, added with the bound (no patch needed).
  'lean-pipeline-v1': [...EXPECTED, 'fleet-failover'],
  'gpu-recovery-v1': [...EXPECTED, 'fleet-failover'],
  // quarantine: a poison request ending Quarantined after failing on three workers. deadline, deadline-timer,
  // deadline-met: requests with a deadline, timed out mid-inference (stopped by the worker, then by the workflow's
  // timer) and met; added with deadlines, no patch (requests without one are unchanged). region-failover: a waiting
  // request moved to another region by the moveRegion signal (issue 12), no patch (a request never signalled is
  // unchanged).
  'poison-quarantine-v1': [
    ...EXPECTED,
    'fleet-failover',
    'quarantine',
    'deadline',
    'deadline-timer',
    'deadline-met',
    'region-failover',
  ],
  // The region's autoscaler (issue 13), a workflow of its own: scaled up and back down by a small policy.
  'autoscaler-v1': ['autoscaler'],
};

describe('replay of recorded workflow histories (generateImage, autoscaler)', () => {
  test('every recorded history replays without a determinism error', async () => {
    // Replay logs each nondeterminism as an error itself; the assertions below report it.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    const histories: { workflowId: string; history: ReturnType<typeof historyFromJsonText> }[] = [];
    for (const [version, expected] of Object.entries(VERSIONS)) {
      const dir = path.join(HISTORIES_DIR, version);
      const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
      assert.deepEqual(
        expected.filter((name) => !files.includes(`${name}.json`)),
        [],
        `every scenario has a recorded ${version} history`,
      );
      for (const file of files) {
        const workflowId = `${version}/${path.basename(file, '.json')}`;
        histories.push({ workflowId, history: historyFromJsonText(await readFile(path.join(dir, file), 'utf8')) });
      }
    }
    for (const { workflowId, history } of histories) {
      assert.ok((history.events?.length ?? 0) > 10, `${workflowId} has a full history`);
    }

    // Production runs either bundle (tracing on or off): every history must replay on both.
    const failures: string[] = [];
    for (const variant of BUNDLE_VARIANTS) {
      const { code } = await bundleGenerationWorkflows(variant, { logger: new DefaultLogger('WARN') });
      let replayed = 0;
      for await (const result of Worker.runReplayHistories(
        { workflowBundle: { code }, sinks: tracingWorkerOptions().sinks },
        histories,
      )) {
        replayed++;
        if (result.error)
          failures.push(`${variant} ${result.workflowId}: ${result.error.name}: ${result.error.message}`);
      }
      assert.equal(replayed, histories.length);
    }
    assert.deepEqual(failures, [], `histories that no longer replay:\n${failures.join('\n')}`);
  });
});
