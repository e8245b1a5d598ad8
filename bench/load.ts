// `npm run bench:load`: drives Atelier's WebSocket gateway as clients would and, in the same run, on the same
// Temporal server, at the same arrival pattern, "the floor": bare SDK-started workflows of three no-op activities.
// Each segment (default: paced 10/s for 30 s, then a burst of 300) runs against the floor and then against Atelier,
// never both at once. Every Atelier figure is also given as a ratio to the floor's: on a small shared machine the
// absolute times are noise, the ratios from one run are not. It measures and prints; nothing passes or fails.
// `--profile spike` runs issue 11's load proof instead (bench/load/spike.ts), and `--profile mixed` its relax-on-idle
// proof (bench/load/mixed.ts); their checks do pass or fail.
//   npm run bench:load [-- --quick | --attach [stack.json] | --profile spike|mixed | --help]
// Progress and logs go to stderr; the summary and then one JSON line (the last line) to stdout.
import { Client, Connection } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { describePattern } from './load/arrivals';
import { Floor } from './load/floor';
import { historyEventsPerWorkflow } from './load/history';
import { generateFrame, seededRandom } from './load/mix';
import { runMixed } from './load/mixed';
import { HELP, parseLoadOptions, type LoadOptions, type Segment } from './load/options';
import { runPhase, type PhaseContext, type PhaseRun } from './load/phase';
import { verdict } from './load/records';
import { buildReport, phaseFigures, segmentReport, type SegmentReport } from './load/report';
import { runSpike } from './load/spike';
import { REPO_ROOT, attachStack, spawnStack, type Stack } from './load/stack';
import { formatSummary } from './load/summary';
import { GatewayClients } from './load/ws-clients';

const startedAt = performance.now();
const say = (line: string): void =>
  void process.stderr.write(`[bench:load +${((performance.now() - startedAt) / 1000).toFixed(1)}s] ${line}\n`);

interface Session {
  readonly options: LoadOptions;
  readonly stack: Stack;
  readonly client: Client;
  readonly floor: Floor;
  readonly gateway: GatewayClients;
  readonly ctx: PhaseContext;
  /** Unique per run, so request and workflow ids never collide with an earlier run on the same server. */
  readonly runId: string;
  readonly random: () => number;
}

function runFloor(s: Session, segment: Segment, measure = true): Promise<PhaseRun> {
  return s.floor.withWorker(() =>
    runPhase(
      'floor',
      segment,
      (i) => `bench-floor-${s.runId}-${segment.name}-${i}`,
      (record) => s.floor.submit(record, s.options.timeoutMs),
      { ...s.ctx, measure },
    ),
  );
}

function runAtelier(s: Session, segment: Segment, measure = true): Promise<PhaseRun> {
  return runPhase(
    'atelier',
    segment,
    (i) => `lb-${s.runId}-${segment.name}-${i}`,
    (record) => s.gateway.submit(record, generateFrame(record.id, s.options.mix, s.random)),
    { ...s.ctx, measure },
  );
}

/** Warm-up, then each segment against the floor and then Atelier; returns the measured pairs. */
async function runSegments(s: Session): Promise<{ segment: Segment; floor: PhaseRun; atelier: PhaseRun }[]> {
  if (s.options.warmup > 0) {
    const warmup: Segment = { name: 'warmup', pattern: { kind: 'burst', count: s.options.warmup } };
    await runFloor(s, warmup, false);
    await runAtelier(s, warmup, false);
  }
  const out: { segment: Segment; floor: PhaseRun; atelier: PhaseRun }[] = [];
  for (const segment of s.options.segments) {
    if (s.ctx.signal.aborted) break;
    say(`segment ${segment.name}: ${describePattern(segment.pattern)}`);
    const floor = await runFloor(s, segment);
    const atelier = await runAtelier(s, segment);
    out.push({ segment, floor, atelier });
  }
  return out;
}

function completedWorkflowIds(run: PhaseRun | undefined, timeoutMs: number): string[] {
  return (run?.records ?? []).flatMap((r) =>
    verdict(r, timeoutMs) === 'completed' && r.workflowId !== undefined ? [r.workflowId] : [],
  );
}

async function report(s: Session, runs: Awaited<ReturnType<typeof runSegments>>): Promise<void> {
  const { timeoutMs } = s.options;
  const segments: Record<string, SegmentReport> = {};
  for (const { segment, floor, atelier } of runs) {
    segments[segment.name] = segmentReport(
      describePattern(segment.pattern),
      phaseFigures(floor, timeoutMs),
      phaseFigures(atelier, timeoutMs),
    );
  }
  say('reading workflow histories');
  const history = {
    atelier: await historyEventsPerWorkflow(s.client, completedWorkflowIds(runs[0]?.atelier, timeoutMs)),
    floor: await historyEventsPerWorkflow(s.client, completedWorkflowIds(runs[0]?.floor, timeoutMs)),
  };
  const json = buildReport({
    settings: settings(s.options, s.stack, s.gateway.users),
    segments,
    history,
    strayFrames: s.gateway.strays,
  });
  process.stdout.write(`\n${formatSummary(segments, history)}\n`);
  process.stdout.write(`${JSON.stringify(json)}\n`);
}

function settings(options: LoadOptions, stack: Stack, users: number): Record<string, unknown> {
  const env = stack.file.env;
  return {
    commit: gitCommit(),
    mode: stack.mode,
    quick: options.quick,
    segments_run: options.segments.map((seg) => ({ name: seg.name, pattern: describePattern(seg.pattern) })),
    users,
    connections: options.connections,
    models: options.mix.models,
    tiers: options.mix.tiers,
    sizes: options.mix.sizes.map((z) => `${z.width}x${z.height}`),
    steps_per_image: options.mix.steps,
    seed: options.seed,
    sim_speedup: Number(env.ATELIER_SIM_SPEEDUP ?? 1),
    observe: stack.mode === 'spawn' ? options.observe : null,
    rate_limit_per_minute: Number(env.ATELIER_RATE_LIMIT_PER_MINUTE ?? 100),
    max_in_flight_per_user: Number(env.ATELIER_MAX_IN_FLIGHT_PER_USER ?? 50),
    max_in_flight: Number(env.ATELIER_MAX_IN_FLIGHT ?? 10_000),
    gpu_types: (env.ATELIER_GPU_TYPES ?? 'a10g,a100,a100-80gb,h100').split(','),
    timeout_s: options.timeoutMs / 1000,
    warmup: options.warmup,
  };
}

function gitCommit(): string | null {
  try {
    const out = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
    return out.trim() || null;
  } catch {
    return null;
  }
}

/** Connects everything the run needs to a stack; closes what it opened if a later step fails. */
async function openSession(options: LoadOptions, stack: Stack, signal: AbortSignal): Promise<Session> {
  const { temporal, gateway, processes } = stack.file;
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace });
  try {
    say('bundling the floor workflow');
    const floor = await Floor.create(client, temporal.address);
    const clients = await GatewayClients.open(gateway.wsUrl, stack.apiKeys, options.connections).catch(
      async (err: unknown) => {
        await floor.close();
        throw err;
      },
    );
    const ctx: PhaseContext = {
      processes: [...processes, { name: 'bench', pid: process.pid }],
      metricsUrl: temporal.metricsUrl,
      namespace: temporal.namespace,
      timeoutMs: options.timeoutMs,
      signal,
    };
    const runId = randomUUID().slice(0, 8);
    return { options, stack, client, floor, gateway: clients, ctx, runId, random: seededRandom(options.seed) };
  } catch (err) {
    await connection.close();
    throw err;
  }
}

async function closeSession(s: Session): Promise<void> {
  await s.gateway.close();
  await s.floor.close();
  await s.client.connection.close();
}

async function main(argv: string[]): Promise<void> {
  let options: LoadOptions | undefined;
  try {
    options = parseLoadOptions(argv);
  } catch (err) {
    say(`${err instanceof Error ? err.message : String(err)} (see --help)`);
    process.exitCode = 2;
    return;
  }
  if (!options) {
    process.stdout.write(HELP);
    return;
  }
  const abort = new AbortController();
  const running: { stack?: Stack } = {};
  const onSignal = (): void => {
    if (abort.signal.aborted) process.exit(130);
    say('interrupted: stopping the stack (again to quit at once)');
    abort.abort();
    running.stack?.interrupt();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const stack = options.attach ? attachStack(options.attach, options, say) : await spawnStack(options, say);
  running.stack = stack;
  if (abort.signal.aborted) stack.interrupt();
  try {
    if (options.spike) {
      const ok = await runSpike(
        options,
        options.spike,
        stack,
        abort.signal,
        say,
        settings(options, stack, options.users),
      );
      process.exitCode = ok === undefined ? 130 : ok ? 0 : 1;
      return;
    }
    if (options.mixed) {
      const settingsNow = settings(options, stack, options.users);
      const ok = await runMixed(options, options.mixed, stack, abort.signal, say, settingsNow);
      process.exitCode = ok === undefined ? 130 : ok ? 0 : 1;
      return;
    }
    const session = await openSession(options, stack, abort.signal);
    say(`settings: ${JSON.stringify(settings(session.options, session.stack, session.gateway.users))}`);
    try {
      const runs = await runSegments(session);
      if (abort.signal.aborted) process.exitCode = 130;
      else await report(session, runs);
    } finally {
      await closeSession(session);
    }
  } finally {
    if (stack.mode === 'spawn') say('stopping the stack');
    await stack.stop();
  }
}

main(process.argv.slice(2)).then(
  // The Temporal runtime's native threads can keep the process up after everything is closed.
  () => setTimeout(() => process.exit(), 1_000).unref(),
  (err: unknown) => {
    say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
