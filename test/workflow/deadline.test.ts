// Request deadlines (`deadlineMs`, issue 11) on a real Temporal dev server with the production workers: a request
// whose deadline passes while it waits (for a fleet with no worker, behind a busy GPU, in pending_safety) or while
// its GPU runs ends with exactly one `failed` TIMED_OUT, and its GPU run is stopped at the deadline, before the client
// hears; a generous deadline changes nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { SequencedEvent } from '../../core/events';
import type { GenerationRequest } from '../../core/request';
import { RulesPromptScreen } from '../../activities/safety';
import type { SimulatedGpuBackend } from '../../inference/simulated';
import { statusQuery } from '../../workflows/generate-image';
import { createTemporalTestEnv, startGenerationHarness, type GenerationHarness } from '../helpers/temporal';

/** The safety screen is down for this prompt, for good. */
const SCREEN_DOWN_PROMPT = 'a kite over the dunes (safety screen down)';
/** The GPU worker is handed this request without its deadline, as a worker that ignored it would run it. */
const DEADLINE_IGNORED_PROMPT = 'a heron in the reeds (the worker ignores the deadline)';
/** An SDXL 1024x1024 step on the simulated A10G takes about 145 ms at this speed-up, so 40 steps run about 6 s. */
const SPEEDUP = 2;
const LONG = { width: 1024, height: 1024, steps: 40 } as const;

/** How a GPU run ended, seen from around the real activity. */
interface RunEnd {
  readonly endedAt: number;
  /** `completed`, the failure's type, or the error's name for a cancellation (CancelledFailure, AbortError). */
  readonly how: string;
}

interface Outcome {
  readonly events: SequencedEvent[];
  readonly terminal: SequencedEvent;
  /** When the workflow's result came back (the request had ended), ms since epoch. */
  readonly endedAt: number;
}

const isTerminal = (e: SequencedEvent): boolean => e.type === 'completed' || e.type === 'failed';
const statuses = (events: SequencedEvent[]): string[] => events.flatMap((e) => (e.type === 'status' ? [e.status] : []));

describe('request deadlines: deadlineMs -> TIMED_OUT', () => {
  let env: TestWorkflowEnvironment;
  let h: GenerationHarness;
  let a10g: SimulatedGpuBackend;
  const runs = new Map<string, RunEnd>();

  before(async () => {
    env = await createTemporalTestEnv();
    const rules = new RulesPromptScreen();
    h = await startGenerationHarness(env, {
      // One A10G worker with one slot: a second request waits in Temporal's queue while the first runs.
      gpus: { a10g: { speedup: SPEEDUP, slots: 1 } },
      screen: {
        name: rules.name,
        async screen(prompt) {
          if (prompt === SCREEN_DOWN_PROMPT) throw new Error('Safety service unavailable (injected outage)');
          return rules.screen(prompt);
        },
      },
      wrapInference: (activities) => ({
        async runInference(input) {
          const forwarded = input.prompt === DEADLINE_IGNORED_PROMPT ? { ...input, deadlineAt: undefined } : input;
          try {
            const output = await activities.runInference(forwarded);
            runs.set(input.requestId, { endedAt: Date.now(), how: 'completed' });
            return output;
          } catch (err) {
            const how = (err as { type?: string }).type ?? (err as Error).name;
            runs.set(input.requestId, { endedAt: Date.now(), how });
            throw err;
          }
        },
      }),
    });
    a10g = h.backends.get('a10g') as SimulatedGpuBackend;
  });
  after(async () => {
    await h?.stop();
    await env?.teardown();
  });

  /** The simulated A10G's counters that tell whether a job ran, finished or was cancelled. */
  function gpuCounters(): { jobs: number; steps: number; cancelled: number; active: number } {
    const { jobs = 0, steps = 0, cancelled = 0, active = 0 } = a10g.status().counters ?? {};
    return { jobs, steps, cancelled, active };
  }

  /** Waits for the request's workflow to end and reads its log. */
  async function settle(req: GenerationRequest, handle: WorkflowHandle): Promise<Outcome> {
    await handle.result().catch(() => undefined);
    const endedAt = Date.now();
    const events = await h.events(req);
    const terminals = events.filter(isTerminal);
    assert.equal(terminals.length, 1, `exactly one terminal event: ${JSON.stringify(events)}`);
    assert.equal(events.at(-1), terminals[0], 'nothing after the terminal event');
    return { events, terminal: terminals[0] as SequencedEvent, endedAt };
  }

  /** The request ended failed TIMED_OUT (retryable: a longer deadline may do), in the log and in the query. */
  async function assertTimedOut(handle: WorkflowHandle, outcome: Outcome): Promise<void> {
    const { terminal } = outcome;
    assert.deepEqual(terminal.type === 'failed' && [terminal.code, terminal.retryable], ['TIMED_OUT', true]);
    assert.equal((await handle.query(statusQuery)).failure?.code, 'TIMED_OUT');
    const history = (await handle.fetchHistory()).events ?? [];
    assert.match(JSON.stringify(history.at(-1)?.workflowExecutionFailedEventAttributes), /DeadlineExceeded/);
  }

  test('waiting for a fleet with no worker: TIMED_OUT at the deadline, not NO_CAPACITY after every fleet', async () => {
    // Turbo goes to H100, then A100-80GB, then A100 (60 s each); only an A10G runs here.
    const req = h.request({ tier: 'turbo', deadlineMs: 2000 });
    const deadlineAt = req.deadlineAt as number;
    const handle = await h.start(req);
    const outcome = await settle(req, handle);
    await assertTimedOut(handle, outcome);
    assert.ok(outcome.endedAt >= deadlineAt, 'not before the deadline');
    assert.ok(outcome.endedAt < deadlineAt + 3000, `ended ${outcome.endedAt - deadlineAt} ms after the deadline`);
    assert.equal(statuses(outcome.events).includes('generating'), false, 'no GPU ever took it');
    // One fleet tried, and its wait for a worker was cut from 60 s to what was left of the 2 s.
    const history = (await handle.fetchHistory()).events ?? [];
    const scheduled = history.flatMap((e) => e.activityTaskScheduledEventAttributes ?? []);
    const gpuAttempts = scheduled.filter((a) => a.activityType?.name === 'runInference');
    assert.equal(gpuAttempts.length, 1);
    const wait = gpuAttempts[0]?.scheduleToStartTimeout;
    const waitMs = Number(String(wait?.seconds ?? 0)) * 1000 + (wait?.nanos ?? 0) / 1e6;
    assert.ok(waitMs > 0 && waitMs <= 2000, `schedule-to-start ${waitMs} ms`);
  });

  test('waiting behind a busy single-slot GPU: TIMED_OUT, never run, and the running request is untouched', async () => {
    const busy = h.request({ ...LONG, prompt: 'a long exposure of a night harbour' });
    const busyHandle = await h.start(busy);
    await h.waitForEvent(busy, (e) => e.type === 'status' && e.status === 'generating');
    const req = h.request({ deadlineMs: 1500 });
    const handle = await h.start(req);
    const outcome = await settle(req, handle);
    await assertTimedOut(handle, outcome);
    assert.ok(outcome.endedAt < (req.deadlineAt as number) + 3000);
    assert.equal(runs.has(req.requestId), false, 'no worker ever ran it');
    assert.equal(statuses(outcome.events).includes('generating'), false);
    const busyOutcome = await settle(busy, busyHandle);
    assert.equal(busyOutcome.terminal.type, 'completed');
  });

  test('passing mid-inference: the worker stops the GPU run at the deadline, then the client gets TIMED_OUT', async (t) => {
    const start = gpuCounters();
    const req = h.request({ ...LONG, deadlineMs: 2000 });
    const deadlineAt = req.deadlineAt as number;
    const handle = await h.start(req);
    await h.waitForEvent(req, (e) => e.type === 'progress');
    const outcome = await settle(req, handle);
    await assertTimedOut(handle, outcome);
    const run = runs.get(req.requestId);
    assert.equal(run?.how, 'DeadlineExceeded', 'the worker stopped it on its own clock');
    const lateMs = (run?.endedAt ?? Infinity) - deadlineAt;
    t.diagnostic(`GPU stopped ${lateMs} ms after the deadline; TIMED_OUT ${outcome.endedAt - deadlineAt} ms after it`);
    // Within about one step (145 ms) of the deadline, not a heartbeat later.
    assert.ok(lateMs >= 0 && lateMs < 600, `the GPU run ended ${lateMs} ms after the deadline`);
    assert.ok((run?.endedAt ?? Infinity) <= outcome.endedAt, 'the GPU had stopped before the request ended');
    const end = gpuCounters();
    assert.equal(end.cancelled - start.cancelled, 1, 'the simulated GPU counts one cancelled job');
    assert.equal(end.jobs, start.jobs, 'and no finished one');
    assert.ok(end.steps - start.steps < LONG.steps, `${end.steps - start.steps} of ${LONG.steps} steps ran`);
    assert.equal(end.active, 0, 'the GPU is idle');
    assert.ok(statuses(outcome.events).includes('generating'));
  });

  test("a worker that ignores the deadline is stopped by the workflow's cancel, before the request ends", async (t) => {
    const req = h.request({ ...LONG, prompt: DEADLINE_IGNORED_PROMPT, deadlineMs: 2000 });
    const deadlineAt = req.deadlineAt as number;
    const handle = await h.start(req);
    const outcome = await settle(req, handle);
    await assertTimedOut(handle, outcome);
    const run = runs.get(req.requestId);
    assert.match(run?.how ?? '', /Cancel|Abort/, `the run was cancelled: ${run?.how}`);
    const lateMs = (run?.endedAt ?? Infinity) - deadlineAt;
    t.diagnostic(`GPU stopped ${lateMs} ms after the deadline; TIMED_OUT ${outcome.endedAt - deadlineAt} ms after it`);
    // The cancel reaches the worker in a heartbeat's answer: about a second.
    assert.ok(lateMs >= 0 && lateMs < 3000, `the GPU run ended ${lateMs} ms after the deadline`);
    assert.ok((run?.endedAt ?? Infinity) <= outcome.endedAt, 'the request ended only once the GPU had stopped');
    assert.equal(gpuCounters().active, 0);
    // The deadline timer fired and cancelled the run (the server's start-to-close backstop did not have to).
    const history = (await handle.fetchHistory()).events ?? [];
    assert.equal(history.filter((e) => e.timerFiredEventAttributes).length, 1);
    assert.equal(history.filter((e) => e.activityTaskCanceledEventAttributes).length, 1);
    assert.equal(history.filter((e) => e.activityTaskTimedOutEventAttributes).length, 0);
  });

  test('in pending_safety: TIMED_OUT by the deadline, not after the screen’s 24 h', async () => {
    const req = h.request({ prompt: SCREEN_DOWN_PROMPT, deadlineMs: 5000 });
    const handle = await h.start(req);
    const outcome = await settle(req, handle);
    await assertTimedOut(handle, outcome);
    assert.ok(statuses(outcome.events).includes('pending_safety'));
    assert.equal(statuses(outcome.events).includes('generating'), false);
    assert.ok(outcome.endedAt < (req.deadlineAt as number) + 2000);
  });

  test('a generous deadline changes nothing: completed, and the deadline timer is cancelled, never fired', async () => {
    const req = h.request({ deadlineMs: 60_000 });
    const handle = await h.start(req);
    const outcome = await settle(req, handle);
    assert.equal(outcome.terminal.type, 'completed');
    assert.equal(runs.get(req.requestId)?.how, 'completed');
    const history = (await handle.fetchHistory()).events ?? [];
    assert.equal(history.filter((e) => e.timerStartedEventAttributes).length, 1);
    assert.equal(history.filter((e) => e.timerCanceledEventAttributes).length, 1);
    assert.equal(history.filter((e) => e.timerFiredEventAttributes).length, 0);
  });
});
