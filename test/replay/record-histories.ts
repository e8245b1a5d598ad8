// Records the histories that the replay test checks the workflow code against: runs each scenario on a real
// Temporal dev server with the production workers (test/helpers/temporal.ts) and writes its history as JSON to
// test/replay/histories/<version>/<scenario>.json, the format `temporal workflow show --output json` and the Web UI
// export. <version> is the workflow's newest patch (NEWEST_PATCH): each versioned change gets a folder of its
// own, and the folders of older versions are never re-recorded, since histories of workflows that were in flight
// before a change are what replay must keep passing (histories/classic: before any patch).
//
//   npx tsx test/replay/record-histories.ts            # every scenario
//   npx tsx test/replay/record-histories.ts cancel     # just some
import type { WorkflowHandle } from '@temporalio/client';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { activityFailure } from '../../activities/failures';
import { RulesPromptScreen, type PromptScreen } from '../../activities/safety';
import { NEWEST_PATCH } from '../../workflows/gpu-step';
import { historyToJsonText } from './history-json';
import { stopOwnTestRedis } from '../helpers/redis';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { moveRegionSignal } from '../../workflows/region-move';
import {
  createTemporalTestEnv,
  startExtraGpuWorker,
  startGenerationHarness,
  type GenerationHarness,
} from '../helpers/temporal';

const HISTORIES_DIR = path.join(__dirname, 'histories', NEWEST_PATCH);
const PENDING_SAFETY_PROMPT = 'a paper boat on a puddle (safety screen outage)';
const FLAKY_INFERENCE_PROMPT = 'a red bicycle against a blue wall (first attempt fails)';
const POISON_PROMPT = 'a hall of mirrors (fails on every worker)';
/** Run without its deadline by the worker, so that the workflow's timer is what stops it. */
const DEADLINE_IGNORED_PROMPT = 'a clock tower at noon (the worker ignores the deadline)';

/** Each scenario starts a request and settles it; the recorder only needs the handle. The replay test expects each. */
const SCENARIOS: Record<string, (h: GenerationHarness) => Promise<WorkflowHandle>> = {
  async success(h) {
    const handle = await h.start(h.request({ width: 640, height: 512, steps: 8 }));
    await handle.result();
    return handle;
  },
  async 'multi-image'(h) {
    const handle = await h.start(h.request({ numImages: 3, steps: 4, seed: 1000 }));
    await handle.result();
    return handle;
  },
  async unsafe(h) {
    const handle = await h.start(h.request({ prompt: 'explicit p0rn scene in a hotel room' }));
    await handle.result().catch(() => undefined);
    return handle;
  },
  async retry(h) {
    const handle = await h.start(h.request({ prompt: FLAKY_INFERENCE_PROMPT }));
    await handle.result();
    return handle;
  },
  async 'pending-safety'(h) {
    const handle = await h.start(h.request({ prompt: PENDING_SAFETY_PROMPT }));
    await handle.result();
    return handle;
  },
  async 'model-unavailable'(h) {
    const handle = await h.start(h.request({ model: 'tiny-sd', width: 64, height: 64, steps: 2 }));
    await handle.result().catch(() => undefined);
    return handle;
  },
  async 'fleet-failover'(h) {
    // Turbo goes to H100 first; no H100 worker runs, so after its bounded wait the request moves to A100-80GB.
    const handle = await h.start({ ...h.request({ tier: 'turbo', steps: 4 }), gpuStartTimeoutMs: 1000 });
    await handle.result();
    return handle;
  },
  async 'region-failover'(h) {
    // Turbo goes to H100, which region A (the harness's) lacks; the failover coordinator's signal moves the waiting
    // attempt to region B's H100 queue (workflows/region-move.ts), where it completes.
    const regionB = `${h.region}-b`;
    const workerB = await startExtraGpuWorker(recorderEnv(), h, {
      gpuType: 'h100',
      fleet: { speedup: 1000 },
      identity: 'recorder-region-b',
      region: regionB,
    });
    try {
      const handle = await h.start({ ...h.request({ tier: 'turbo', steps: 4 }), gpuStartTimeoutMs: 120_000 });
      await waitForScheduledGpuAttempt(handle);
      await handle.signal(moveRegionSignal, { from: h.region, to: regionB, cancelWaiting: true });
      await handle.result();
      return handle;
    } finally {
      await workerB.stop();
    }
  },
  async quarantine(h) {
    // Fails on a different worker each attempt: quarantined at the third (POISON_DISTINCT_WORKERS).
    const handle = await h.start(h.request({ prompt: POISON_PROMPT }));
    await handle.result().catch(() => undefined);
    return handle;
  },
  async deadline(h) {
    // The A100 runs at real speed: the deadline passes mid-inference, the run is stopped, the request ends TIMED_OUT.
    const handle = await h.start(h.request({ model: 'sd3', width: 1024, height: 1024, steps: 28, deadlineMs: 2000 }));
    await handle.result().catch(() => undefined);
    return handle;
  },
  async 'deadline-timer'(h) {
    // The worker ignores the deadline: the workflow's timer fires and cancels the run (the worker's own stop at the
    // deadline usually beats it, as in `deadline`).
    const fields = { model: 'sd3', width: 1024, height: 1024, steps: 28, deadlineMs: 2000 };
    const handle = await h.start(h.request({ ...fields, prompt: DEADLINE_IGNORED_PROMPT }));
    await handle.result().catch(() => undefined);
    return handle;
  },
  async 'deadline-met'(h) {
    // A deadline the request meets: its timer is cancelled once the GPU step is done.
    const handle = await h.start(h.request({ steps: 4, deadlineMs: 60_000 }));
    await handle.result();
    return handle;
  },
  async cancel(h) {
    const req = h.request({ model: 'sd3', width: 1024, height: 1024, steps: 28 });
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'progress' && e.step >= 2);
    await handle.cancel();
    await handle.result().catch(() => undefined);
    return handle;
  },
};

/** rules-v1, down for the first four calls about PENDING_SAFETY_PROMPT (a Safety API outage). */
function screenWithOutage(): PromptScreen {
  const rules = new RulesPromptScreen();
  let outageCalls = 0;
  return {
    name: rules.name,
    async screen(prompt) {
      if (prompt === PENDING_SAFETY_PROMPT && ++outageCalls <= 4)
        throw new Error('Safety service unavailable (injected outage)');
      return rules.screen(prompt);
    },
  };
}

let env: TestWorkflowEnvironment | undefined;
function recorderEnv(): TestWorkflowEnvironment {
  if (!env) throw new Error('the recorder has no Temporal environment yet');
  return env;
}

/** Until the request's GPU attempt is scheduled and not started (it waits for a worker). */
async function waitForScheduledGpuAttempt(handle: WorkflowHandle): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    if (pending.some((a) => a.activityType?.name === 'runInference' && Number(a.state) === 1)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the GPU attempt was never scheduled');
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0)
    throw new TypeError(`Unknown scenarios: ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const names = wanted.length > 0 ? wanted : Object.keys(SCENARIOS);

  env = await createTemporalTestEnv();
  const failedOnce = new Set<string>();
  let poisonAttempts = 0;
  const h = await startGenerationHarness(env, {
    gpus: { a10g: { speedup: 1000 }, 'a100-80gb': { speedup: 1000 }, a100: { speedup: 1 } },
    screen: screenWithOutage(),
    wrapInference: (activities) => ({
      async runInference(input) {
        // The first attempt of the request only, however it is retried (by Temporal, or by the workflow).
        if (input.prompt === FLAKY_INFERENCE_PROMPT && !failedOnce.has(input.requestId)) {
          failedOnce.add(input.requestId);
          throw activityFailure('OutOfMemory', 'CUDA out of memory (injected on the first attempt)');
        }
        if (input.prompt === DEADLINE_IGNORED_PROMPT)
          return activities.runInference({ ...input, deadlineAt: undefined });
        if (input.prompt === POISON_PROMPT) {
          const workerId = `recorder-worker-${++poisonAttempts}`;
          throw activityFailure('InferenceFailed', 'the UNet returned NaN (injected)', { details: [{ workerId }] });
        }
        return activities.runInference(input);
      },
    }),
  });
  try {
    await mkdir(HISTORIES_DIR, { recursive: true });
    for (const name of names) {
      const handle = await (SCENARIOS[name] as (h: GenerationHarness) => Promise<WorkflowHandle>)(h);
      const history = await handle.fetchHistory();
      const file = path.join(HISTORIES_DIR, `${name}.json`);
      await writeFile(file, historyToJsonText(history));
      const { status } = await handle.describe();
      process.stdout.write(
        `${name}: ${status.name}, ${history.events?.length ?? 0} events -> ${path.relative(process.cwd(), file)}\n`,
      );
    }
  } finally {
    await h.stop();
    await env?.teardown();
    await stopOwnTestRedis();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `Recording histories failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
