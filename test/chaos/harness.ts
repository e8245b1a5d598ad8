// What every chaos test shares: the real local stack (its processes, as `npm start` runs them) with the simulated GPU
// slow enough that a fault lands while work is queued and running, one client socket, a burst of requests sent and
// accepted, and the rule that each accepted request reaches its client exactly once.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ExperimentFigures } from '../../infra/chaos-report';
import { startStack, repoRoot, type StackHandle } from '../../infra/test-stack';

export { reportExperiment } from '../../infra/chaos-report';
import { arrivalSchedule, runArrivals } from '../../bench/load/arrivals';
import { generateFrame, seededRandom } from '../../bench/load/mix';
import { parseLoadOptions } from '../../bench/load/options';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';
import { within } from '../helpers/deadline';

export interface ChaosStack {
  readonly stack: StackHandle;
  readonly socket: TestSocket;
}

/**
 * Starts the stack before the file's tests and stops it after; the returned object is filled in by then. `env` goes
 * to every child process (a fault to inject, for example).
 */
export function useChaosStack(env: Record<string, string> = {}): ChaosStack {
  const parts = {} as { stack: StackHandle; socket: TestSocket };
  before(async () => {
    assert.ok(existsSync(path.join(repoRoot(), 'dist', 'gateway', 'main.js')), 'dist/ is built (npm test builds it)');
    // A few seconds per request.
    parts.stack = await startStack({
      gatewayPort: 0,
      env: { ATELIER_SIM_SPEEDUP: '2', LOG_LEVEL: 'warn', ...env },
    } as Parameters<typeof startStack>[0]);
    parts.socket = await connectTestSocket(parts.stack.gatewayWsUrl, parts.stack.apiKey);
  });
  after(async () => {
    await within('the test socket', 10_000, parts.socket?.close() ?? Promise.resolve());
    await within(
      'the local stack (gateway, workers, Redis, Temporal)',
      60_000,
      parts.stack?.stop() ?? Promise.resolve(),
    );
  });
  return parts;
}

/** Sends `count` SDXL requests (512x512, 10 steps) and waits until each is accepted; returns their ids. */
export async function sendAcceptedBurst(
  socket: TestSocket,
  label: string,
  count: number,
  tierOf: (i: number) => string = () => 'fast',
): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${label}-${Date.now()}-${i}`);
  ids.forEach((requestId, i) =>
    socket.send({
      type: 'generate',
      requestId,
      prompt: `a quiet harbour, variation ${i}`,
      model: 'sdxl',
      tier: tierOf(i),
      width: 512,
      height: 512,
      steps: 10,
    }),
  );
  for (const id of ids) {
    const accepted = await socket.waitFor(
      (f) => f.requestId === id && (f.type === 'accepted' || f.type === 'rejected'),
      60_000,
    );
    assert.equal(accepted.type, 'accepted', JSON.stringify(accepted));
  }
  return ids;
}

/** Requests bench:load's generator sent during an experiment: accepted ones must be answered like any other. */
export interface BackgroundLoad {
  readonly accepted: string[];
  readonly refused: { readonly requestId: string; readonly code: unknown }[];
}

/**
 * bench:load's load generator running beside an experiment: its open-loop paced arrivals and its default request
 * mix (bench/load), `rate` requests per second for `seconds`, on the experiment's socket. Resolves once every one
 * sent was accepted or refused. A refusal (a breaker, SERVICE_UNAVAILABLE during an outage) is the service saying no
 * in time, which is allowed; an accepted request then counts like the experiment's own.
 */
export async function benchLoad(
  socket: TestSocket,
  label: string,
  rate: number,
  seconds: number,
): Promise<BackgroundLoad> {
  const options = parseLoadOptions([]);
  assert.ok(options, "bench:load's default options");
  const random = seededRandom(0x5eed);
  const ids: string[] = [];
  await runArrivals(arrivalSchedule({ kind: 'paced', rate, count: Math.round(rate * seconds) }), (i) => {
    const requestId = `${label}-load-${Date.now()}-${i}`;
    ids.push(requestId);
    socket.send(generateFrame(requestId, options.mix, random));
  });
  const load: BackgroundLoad = { accepted: [], refused: [] };
  for (const requestId of ids) {
    const first = await socket.waitFor(
      (f) => f.requestId === requestId && (f.type === 'accepted' || f.type === 'rejected'),
      120_000,
    );
    if (first.type === 'accepted') load.accepted.push(requestId);
    else load.refused.push({ requestId, code: first.code });
  }
  return load;
}

/**
 * An outage under load, the shape the restart experiments share: a burst of fast and relax requests, the fault once
 * one is generating, bench:load's generator sending throughout, then every accepted request answered exactly once.
 * Returns every accepted id and the time from the fault to the last answer.
 */
export async function outageUnderLoad(
  socket: TestSocket,
  label: string,
  fault: () => Promise<void>,
): Promise<{ ids: string[]; recoveryMs: number }> {
  const ids = await sendAcceptedBurst(socket, label, 6, (i) => (i % 2 ? 'relax' : 'fast'));
  await socket.waitFor((f) => f.type === 'progress', 60_000);
  const load = benchLoad(socket, label, 1, 8);
  const faultAt = Date.now();
  await fault();
  ids.push(...(await load).accepted);
  await assertEachCompletedOnce(socket, ids);
  return { ids, recoveryMs: Date.now() - faultAt };
}

/** Each request reached its client completed, with exactly one terminal event: lost 0, duplicates 0. */
export async function assertEachCompletedOnce(socket: TestSocket, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    const done = await socket.terminal(id, 240_000);
    assert.equal(done.type, 'completed', `${id}: ${JSON.stringify(done)}`);
    const terminals = socket.framesFor(id).filter((f) => f.type === 'completed' || f.type === 'failed');
    assert.equal(terminals.length, 1, `${id} has exactly one terminal event`);
  }
}

/** Counts each request's terminal frames as its client received them: the figures every experiment reports. */
export function countOutcomes(
  terminalsOf: (id: string) => readonly { type: string }[],
  ids: readonly string[],
): Omit<ExperimentFigures, 'recoveryMs'> {
  let completedOnce = 0;
  let failedWithCode = 0;
  let lost = 0;
  let duplicates = 0;
  for (const id of ids) {
    const terminals = terminalsOf(id).filter((f) => f.type === 'completed' || f.type === 'failed');
    if (terminals.length === 0) lost++;
    duplicates += Math.max(0, terminals.length - 1);
    if (terminals.length === 1 && terminals[0]?.type === 'completed') completedOnce++;
    if (terminals.length === 1 && terminals[0]?.type === 'failed') failedWithCode++;
  }
  return { accepted: ids.length, completedOnce, failedWithCode, lost, duplicates };
}
