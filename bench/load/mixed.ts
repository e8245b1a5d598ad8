// bench:load's mixed profile (`--profile mixed`, issue 11 item 5: relax on idle capacity only). Measures one fleet's
// fast capacity (a calibration burst from users of its own), then runs the same Poisson fast arrivals twice at
// --fast-load of it: once alone (baseline), once after a relax flood from other users has been sent and answered, so
// the fleet's relax lane is full for the whole phase. Each fast request's queue wait is what its client sees, from
// `accepted` to its first `progress` frame (the device running it). Then the relax backlog drains for --drain s and
// what is left is cancelled, so every relax request ends. Production admission caps: the flood is spread over enough
// users that their in-flight caps admit it. No floor: the figures are the two phases' ratio.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Tier } from '../../core/tiers';
import { arrivalSchedule, runArrivals, type Arrival } from './arrivals';
import { generateFrame, seededRandom } from './mix';
import {
  fastPhaseFigures,
  mixedChecks,
  phaseOver,
  phaseWindow,
  relaxFigures,
  stillOpen,
  unanswered,
} from './mixed-figures';
import {
  fastRate,
  floodSize,
  mixFleet,
  mixedCalibrationUsers,
  poissonArrivals,
  relaxPerUser,
  type MixedOptions,
} from './mixed-options';
import { formatMixed, mixedReport } from './mixed-report';
import type { LoadOptions } from './options';
import { showProgress } from './progress';
import { newRecord, verdict, type RequestRecord } from './records';
import { sendRate } from './spike-figures';
import type { Stack } from './stack';
import { throughput } from './stats';
import { GatewayClients } from './ws-clients';

type Say = (line: string) => void;

interface MixedRun {
  readonly options: LoadOptions;
  readonly mixed: MixedOptions;
  readonly stack: Stack;
  readonly signal: AbortSignal;
  readonly runId: string;
  readonly say: Say;
}

/** How long the flood may take to be answered, and cancelled requests to end, before the run goes on without them. */
const ANSWER_WAIT_MS = 120_000;
const CANCEL_WAIT_MS = 60_000;

/** Resolves once `done()` holds, `deadlineAt` (performance.now ms) has passed, or the run is interrupted. */
async function until(done: () => boolean, deadlineAt: number, signal: AbortSignal): Promise<void> {
  while (!done() && !signal.aborted && performance.now() < deadlineAt) await sleep(25);
}

/**
 * Sends `arrivals` of `tier` through `clients` as requests `<name>-<run>-<i>`, then waits until `over(records, now)`
 * or `waitMs` after the last send. The records keep filling in afterwards: the clients still deliver their frames.
 */
async function offer(
  run: MixedRun,
  clients: GatewayClients,
  plan: { name: string; tier: Tier; arrivals: readonly Arrival[]; random: () => number; waitMs: number },
  over: (records: readonly RequestRecord[], now: number) => boolean,
): Promise<RequestRecord[]> {
  const records: RequestRecord[] = [];
  const mix = { ...run.options.mix, tiers: [plan.tier] };
  const stop = showProgress(plan.name, records, plan.arrivals.length);
  try {
    await runArrivals(
      plan.arrivals,
      (index, arrival) => {
        const record = newRecord(`${plan.name}-${run.runId}-${index}`, index, arrival.rate);
        records.push(record);
        clients.submit(record, generateFrame(record.id, mix, plan.random));
      },
      run.signal,
    );
    await until(() => over(records, performance.now()), performance.now() + plan.waitMs, run.signal);
  } finally {
    stop();
  }
  return records;
}

/** Opens one connection per key (at least `connections`), runs `body`, closes them. */
async function withClients<T>(
  run: MixedRun,
  keys: readonly string[],
  connections: number,
  body: (c: GatewayClients) => Promise<T>,
): Promise<T> {
  const clients = await GatewayClients.open(run.stack.file.gateway.wsUrl, keys, Math.max(connections, keys.length));
  try {
    return await body(clients);
  } finally {
    await clients.close();
  }
}

/** Completed fast requests per second of a saturating burst: the fleet's fast capacity with this request. */
async function calibrate(run: MixedRun, keys: readonly string[]): Promise<{ capacity: number; sent: number }> {
  const { options, mixed } = run;
  const random = seededRandom(options.seed + 1);
  const burst = (clients: GatewayClients, name: string, count: number): Promise<RequestRecord[]> =>
    offer(
      run,
      clients,
      { name, tier: 'fast', arrivals: arrivalSchedule({ kind: 'burst', count }), random, waitMs: options.timeoutMs },
      (records, now) => phaseOver(records, options.timeoutMs, now),
    );
  const records = await withClients(run, keys, keys.length, async (clients) => {
    if (options.warmup > 0) await burst(clients, 'warmup', options.warmup);
    run.say(`calibration: a burst of ${mixed.calibrationCount} fast requests from ${keys.length} users of its own`);
    return burst(clients, 'calibration', mixed.calibrationCount);
  });
  const completed = records.filter((r) => verdict(r, options.timeoutMs) === 'completed');
  const capacity = throughput(records, completed);
  if (capacity === null) throw new Error('the calibration burst completed nothing: no capacity to load');
  if (completed.length < records.length) {
    run.say(
      `  ${records.length - completed.length} calibration requests did not complete: capacity may be understated`,
    );
  }
  return { capacity, sent: records.length };
}

/** One phase's fast arrivals (the same schedule and request sequence every time), until each has ended or is lost. */
function fastPhase(run: MixedRun, clients: GatewayClients, name: string, arrivals: readonly Arrival[]) {
  const waitMs = run.options.timeoutMs;
  const plan = { name, tier: 'fast' as const, arrivals, random: seededRandom(run.options.seed), waitMs };
  return offer(run, clients, plan, (records, now) => phaseOver(records, waitMs, now));
}

/** Sends the relax flood and waits until every request of it has been accepted or refused. */
async function sendFlood(run: MixedRun, clients: GatewayClients, count: number) {
  const started = performance.now();
  const arrivals = arrivalSchedule({ kind: 'paced', rate: run.mixed.floodRate, count });
  const plan = { name: 'flood', tier: 'relax' as const, arrivals, random: seededRandom(run.options.seed + 2) };
  const records = await offer(run, clients, { ...plan, waitMs: ANSWER_WAIT_MS }, (rs) => unanswered(rs) === 0);
  return { records, answeredInS: Math.round((performance.now() - started) / 100) / 10 };
}

/** Lets the relax backlog drain for --drain s, then cancels what is left and waits for those to end. */
async function endRelax(run: MixedRun, clients: GatewayClients, relax: readonly RequestRecord[]): Promise<number> {
  const started = performance.now();
  const open = (): number => stillOpen(relax).length;
  run.say(`draining the relax backlog (${open()} open) for up to ${run.mixed.drainS} s`);
  await until(() => open() === 0, started + run.mixed.drainS * 1000, run.signal);
  const drainedS = Math.round((performance.now() - started) / 100) / 10;
  const left = stillOpen(relax).filter((r) => r.acceptedAt !== undefined);
  if (left.length > 0 && !run.signal.aborted) {
    run.say(`cancelling the ${left.length} relax requests left`);
    for (const r of left) clients.cancel(r);
    await until(() => open() === 0, performance.now() + CANCEL_WAIT_MS, run.signal);
  }
  return drainedS;
}

/** The users of each part of the run: spawn mode has a key for each; attach mode may have to share. */
function usersOf(run: MixedRun) {
  const { options, mixed, stack } = run;
  const keys = stack.apiKeys;
  const fast = keys.slice(0, options.users);
  const relax = keys.slice(options.users, options.users + mixed.relaxUsers);
  const calibration = keys.slice(options.users + mixed.relaxUsers);
  if (relax.length === 0) run.say('  warning: no keys left for relax users; the fast users send the flood too');
  return {
    fast,
    relax: relax.length > 0 ? relax : fast,
    calibration: calibration.length > 0 ? calibration.slice(0, mixedCalibrationUsers(mixed, options.warmup)) : fast,
  };
}

/** What the run offers, decided once the capacity is known. */
interface MixedPlan {
  readonly users: ReturnType<typeof usersOf>;
  readonly capacity: number;
  readonly measured: { readonly capacity: number; readonly sent: number } | undefined;
  readonly rate: number;
  readonly arrivals: readonly Arrival[];
  readonly flood: ReturnType<typeof floodSize>;
}

interface MixedResult {
  readonly baseline: readonly RequestRecord[];
  readonly underFlood: readonly RequestRecord[];
  readonly relax: readonly RequestRecord[];
  readonly answeredInS: number;
  readonly drainedS: number;
}

/** Baseline, flood, fast under the flood, then the relax backlog's end; undefined when interrupted. */
function phases(run: MixedRun, plan: MixedPlan): Promise<MixedResult | undefined> {
  const { users, arrivals } = plan;
  return withClients(run, users.fast, run.options.connections, (fastClients) =>
    withClients(run, users.relax, users.relax.length, async (relaxClients) => {
      const baseline = await fastPhase(run, fastClients, 'baseline', arrivals);
      if (run.signal.aborted) return undefined;
      const flood = await sendFlood(run, relaxClients, plan.flood.count);
      if (run.signal.aborted) return undefined;
      const underFlood = await fastPhase(run, fastClients, 'fast-under-flood', arrivals);
      if (run.signal.aborted) return undefined;
      const drainedS = await endRelax(run, relaxClients, flood.records);
      if (run.signal.aborted) return undefined;
      return { baseline, underFlood, relax: flood.records, answeredInS: flood.answeredInS, drainedS };
    }),
  );
}

/** Prints the summary and the JSON line; returns whether every check passed. */
function report(run: MixedRun, plan: MixedPlan, result: MixedResult, settings: Record<string, unknown>): boolean {
  const { options, mixed } = run;
  const baseline = fastPhaseFigures(result.baseline, options.timeoutMs, mixed.durationS);
  const floodPhase = fastPhaseFigures(result.underFlood, options.timeoutMs, mixed.durationS);
  const relax = relaxFigures(result.relax, phaseWindow(result.underFlood));
  const { users, measured } = plan;
  const json = mixedReport({
    settings,
    mixed,
    fleet: mixFleet(options.mix),
    users: { fast: users.fast.length, relax: users.relax.length, calibration: users.calibration.length },
    capacity: { per_s: plan.capacity, source: measured ? 'measured' : 'flag', calibration_sent: measured?.sent ?? 0 },
    fast: { rate: plan.rate, perPhase: plan.arrivals.length },
    flood: { ...plan.flood, sentPerS: sendRate(result.relax), answeredInS: result.answeredInS },
    drainedS: result.drainedS,
    baseline,
    floodPhase,
    relax,
    checks: mixedChecks(baseline, floodPhase, relax),
  });
  process.stdout.write(`\n${formatMixed(json)}\n`);
  process.stdout.write(`${JSON.stringify(json)}\n`);
  return json.pass;
}

/**
 * Runs the mixed profile on `stack` and prints its figures and JSON line; resolves false when a check failed, or
 * undefined when the run was interrupted.
 */
export async function runMixed(
  options: LoadOptions,
  mixed: MixedOptions,
  stack: Stack,
  signal: AbortSignal,
  say: Say,
  settings: Record<string, unknown>,
): Promise<boolean | undefined> {
  const run: MixedRun = { options, mixed, stack, signal, runId: randomUUID().slice(0, 8), say };
  const users = usersOf(run);
  const measured = mixed.capacity === undefined ? await calibrate(run, users.calibration) : undefined;
  if (signal.aborted) return undefined;
  const capacity = mixed.capacity ?? measured?.capacity ?? 0;
  const rate = fastRate(mixed, capacity);
  const arrivals = poissonArrivals(rate, mixed.durationS, seededRandom(options.seed));
  const flood = floodSize(mixed, capacity, users.relax.length, relaxPerUser(stack.file.env));
  say(
    `mixed: fast capacity ${capacity}/s (${measured ? 'measured' : '--capacity'}); fast ${rate}/s Poisson, ` +
      `${arrivals.length} per phase from ${users.fast.length} users; relax flood ${flood.count} from ` +
      `${users.relax.length} users${flood.capped ? ` (cut to ${flood.most} by the caps)` : ''}`,
  );
  const plan: MixedPlan = { users, capacity, measured, rate, arrivals, flood };
  const result = await phases(run, plan);
  return result === undefined ? undefined : report(run, plan, result, settings);
}
