// bench:load's spike profile (`--profile spike`, issue 11's load proof): measure what the fleet completes per second
// (a calibration burst from users of its own, so the spike's users start with a full rate budget and nothing in
// flight), then offer --multiplier times that, open loop, for --duration seconds from --users users across every tier,
// against the gateway's production admission caps. Everything above what the caps admit must come back as a
// documented rejection with retryAfterMs, and everything admitted must end. The Temporal backlog and every process's
// readiness are sampled meanwhile. No floor: the figures are counts and ratios to the measured capacity.
import { Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { generateFrame, seededRandom } from './mix';
import type { LoadOptions } from './options';
import { runPhase, type PhaseContext } from './phase';
import { verdict, type RequestRecord } from './records';
import { healthFigures, queueFigures, spikeChecks } from './spike-checks';
import { inFlightBound, outcomeFigures, sendRate, waitsByTier, type InFlightBound } from './spike-figures';
import { spikeArrivals, spikeWaitS, type SpikeOptions } from './spike-options';
import { SpikeProbes, probeTargets, processesAlive, readinessNow } from './spike-probes';
import { formatSpike, spikeReport } from './spike-report';
import type { Stack } from './stack';
import { throughput } from './stats';
import { GatewayClients } from './ws-clients';

type Say = (line: string) => void;

interface SpikeRun {
  readonly options: LoadOptions;
  readonly spike: SpikeOptions;
  readonly stack: Stack;
  readonly ctx: PhaseContext;
  readonly runId: string;
  readonly random: () => number;
  readonly say: Say;
}

/** Sends a burst of `count` from `keys` (one connection each) and returns its records once all have ended. */
async function burst(run: SpikeRun, keys: readonly string[], name: string, count: number): Promise<RequestRecord[]> {
  const clients = await GatewayClients.open(run.stack.file.gateway.wsUrl, keys, keys.length);
  try {
    const phase = await runPhase(
      'atelier',
      { name, pattern: { kind: 'burst', count } },
      (i) => `${name}-${run.runId}-${i}`,
      (record) => clients.submit(record, generateFrame(record.id, run.options.mix, run.random)),
      run.ctx,
    );
    return [...phase.records];
  } finally {
    await clients.close();
  }
}

/** Completed requests per second of a saturating burst: the fleet's capacity with this request mix. */
async function measureCapacity(run: SpikeRun, keys: readonly string[]): Promise<{ capacity: number; sent: number }> {
  if (run.options.warmup > 0) await burst(run, keys, 'warmup', run.options.warmup);
  run.say(`calibration: a burst of ${run.spike.calibrationCount} from ${keys.length} users of its own`);
  const records = await burst(run, keys, 'calibration', run.spike.calibrationCount);
  const completed = records.filter((r) => verdict(r, run.options.timeoutMs) === 'completed');
  const capacity = throughput(records, completed);
  if (capacity === null) throw new Error('the calibration burst completed nothing: no capacity to offer 10x of');
  const refused = records.length - completed.length;
  if (refused > 0) run.say(`  ${refused} calibration requests did not complete: the capacity may be understated`);
  return { capacity, sent: records.length };
}

interface SpikeResult {
  readonly records: readonly RequestRecord[];
  readonly tiers: ReadonlyMap<string, string>;
  readonly probes: SpikeProbes;
  readonly readyAfter: Record<string, boolean>;
  readonly aliveAfter: Record<string, boolean>;
}

/** The spike itself: paced arrivals at `rate` from the spike's users while the probes sample. */
async function offer(
  run: SpikeRun,
  keys: readonly string[],
  rate: number,
  count: number,
  waitS: number,
): Promise<SpikeResult> {
  const { file } = run.stack;
  const connection = await Connection.connect({ address: file.temporal.address });
  const clients = await GatewayClients.open(file.gateway.wsUrl, keys, Math.max(run.options.connections, keys.length));
  const records: RequestRecord[] = [];
  const tiers = new Map<string, string>();
  const inFlight = (): number => records.filter((r) => r.acceptedAt !== undefined && r.outcome === undefined).length;
  const probes = new SpikeProbes(connection, file.temporal.namespace, probeTargets(file), inFlight);
  try {
    probes.start();
    await runPhase(
      'atelier',
      { name: 'spike', pattern: { kind: 'paced', rate, count } },
      (i) => `spike-${run.runId}-${i}`,
      (record) => {
        const frame = generateFrame(record.id, run.options.mix, run.random);
        tiers.set(record.id, String(frame.tier));
        records.push(record);
        clients.submit(record, frame);
      },
      { ...run.ctx, timeoutMs: waitS * 1000 },
    );
    await probes.stop();
    // "After": every request has ended (or is past its wait); the stack must still answer ready, with no restarts.
    return {
      records,
      tiers,
      probes,
      readyAfter: await readinessNow(probes.targets),
      aliveAfter: processesAlive(file),
    };
  } finally {
    // Again on the error path; stopping twice is harmless.
    await probes.stop();
    await clients.close();
    await connection.close();
  }
}

/** What the spike offers, decided once the capacity is known. */
interface SpikePlan {
  readonly capacity: number;
  readonly measured: { readonly capacity: number; readonly sent: number } | undefined;
  readonly bound: InFlightBound;
  readonly waitS: number;
  readonly rate: number;
  readonly count: number;
  readonly users: number;
  readonly calibrationUsers: number;
}

/** Prints the summary and the JSON line; returns whether every check passed. */
function report(run: SpikeRun, plan: SpikePlan, result: SpikeResult, settings: Record<string, unknown>): boolean {
  const waitMs = plan.waitS * 1000;
  const outcomes = outcomeFigures(result.records, waitMs);
  const waits = waitsByTier(result.records, (id) => result.tiers.get(id));
  const queues = queueFigures(result.probes.samples, plan.bound);
  const health = healthFigures(result.probes.samples, result.readyAfter, result.aliveAfter);
  const checks = spikeChecks({ outcomes, queues, waits, turboWaitBoundMs: run.spike.turboWaitBoundMs, health });
  const completed = result.records.filter((r) => verdict(r, waitMs) === 'completed');
  const json = spikeReport({
    settings: { ...settings, calibration_users: plan.calibrationUsers },
    users: plan.users,
    spike: run.spike,
    capacity: {
      per_s: plan.capacity,
      source: plan.measured ? 'measured' : 'flag',
      calibration_sent: plan.measured?.sent ?? 0,
    },
    offered: { rate: plan.rate, count: plan.count },
    waitS: plan.waitS,
    sentPerS: sendRate(result.records),
    completedPerS: throughput(result.records, completed),
    outcomes,
    waits,
    queues,
    health,
    checks,
  });
  process.stdout.write(`\n${formatSpike(json)}\n`);
  process.stdout.write(`${JSON.stringify(json)}\n`);
  return json.pass;
}

/**
 * Runs the spike profile on `stack` and prints its figures and JSON line; resolves false when a check failed, or
 * undefined when the run was interrupted.
 */
export async function runSpike(
  options: LoadOptions,
  spike: SpikeOptions,
  stack: Stack,
  signal: AbortSignal,
  say: Say,
  settings: Record<string, unknown>,
): Promise<boolean | undefined> {
  const ctx: PhaseContext = {
    processes: [...stack.file.processes, { name: 'bench', pid: process.pid }],
    metricsUrl: null,
    namespace: stack.file.temporal.namespace,
    timeoutMs: options.timeoutMs,
    signal,
    measure: false,
  };
  const runId = randomUUID().slice(0, 8);
  const run: SpikeRun = { options, spike, stack, ctx, runId, random: seededRandom(options.seed), say };
  const spikeKeys = stack.apiKeys.slice(0, options.users);
  // Attach mode may know fewer keys than the run wants: then the calibration borrows the spike's users.
  const calibrationKeys = stack.apiKeys.length > options.users ? stack.apiKeys.slice(options.users) : spikeKeys;
  const measured = spike.capacity === undefined ? await measureCapacity(run, calibrationKeys) : undefined;
  if (signal.aborted) return undefined;
  const capacity = spike.capacity ?? measured?.capacity ?? 0;
  const bound = inFlightBound(stack.file.env, spikeKeys.length);
  const waitS = spikeWaitS(spike, bound.bound, capacity);
  const { rate, count } = spikeArrivals(spike, capacity);
  const plan: SpikePlan = {
    capacity,
    measured,
    bound,
    waitS,
    rate,
    count,
    users: spikeKeys.length,
    calibrationUsers: calibrationKeys.length,
  };
  say(
    `spike: capacity ${capacity}/s (${measured ? 'measured' : '--capacity'}), offering ${rate}/s x ${count} ` +
      `(${spike.durationS} s) from ${spikeKeys.length} users; in-flight bound ${bound.bound}; wait ${waitS} s`,
  );
  const result = await offer(run, spikeKeys, rate, count, waitS);
  if (signal.aborted) return undefined;
  return report(run, plan, result, settings);
}
