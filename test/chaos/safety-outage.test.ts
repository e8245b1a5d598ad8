// Chaos, seed 001 "Safety API unavailable": the safety service (workers/safety-service.ts, which the control worker
// asks through ATELIER_SAFETY_URL) is SIGKILLed under load. Requests sent meanwhile cannot be screened: after their
// quick attempts (about 3 s) they park in pending_safety, their clients are told so, no GPU time is spent on them,
// and the control worker's atelier_requests_pending_safety gauge (the input of the "alert if >5 minutes" rule) counts
// them. The service is started again on the same port, and every request, those in flight at the kill and those
// parked, completes exactly once. Its recovery figure: the service back -> every request answered.
//
// The alert itself needs 5 minutes of outage; its rule is tested with promtool (infra/prometheus/rules).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SAFETY_BREAKER } from '../../activities/safety-http';
import { freePort } from '../../infra/ports';
import { childLifelineArgs, spawnService, type ServiceProcess } from '../../infra/processes';
import { repoRoot, type StackHandle } from '../../infra/test-stack';
import { eventually } from '../helpers/eventually';
import { FrameTimes } from './frame-times';
import { assertEachCompletedOnce, countOutcomes, reportExperiment, sendAcceptedBurst, useChaosStack } from './harness';

/** Requests sent while the service is down (the in-flight burst at the kill is 3). */
const PARKED = 6;
/** How long a request may take to reach pending_safety: three quick attempts, 1 s and 2 s apart, and slack. */
const PARK_WITHIN_MS = 30_000;
/**
 * The shortest outage: long enough that parked requests fail patient attempts too (2 s, then 4 s apart) and the
 * breaker opens, not only the quick attempts before pending_safety.
 */
const MIN_OUTAGE_MS = 12_000;

/** The safety service as a child process of the test, on a port that stays the same across restarts. */
class SafetyService {
  private child: ServiceProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ATELIER_SAFETY_SERVICE_PORT: String(this.port),
      LOG_LEVEL: 'warn',
    };
    // Set by `node --test` for its own subprocesses; the service is a server, not a test file.
    delete env.NODE_TEST_CONTEXT;
    const root = repoRoot();
    this.child = spawnService({
      name: 'safety-service',
      command: process.execPath,
      args: [...childLifelineArgs(root), path.join(root, 'dist', 'workers', 'safety-service.js')],
      env,
      cwd: root,
    });
    const child = this.child;
    await eventually(
      async () => {
        if (child.hasExited) throw new Error(`the safety service exited:\n${child.outputTail()}`);
        return (await fetch(`${this.url}/healthz`).catch(() => undefined))?.status === 200;
      },
      15_000,
      'the safety service to answer /healthz',
    );
  }

  /** A crash: SIGKILL, nothing drained. */
  async kill(): Promise<void> {
    await this.child?.stop({ signal: 'SIGKILL', graceMs: 0 });
  }
}

/** What the control worker reports: its screen in /readyz, and the region's parked requests on /metrics. */
async function controlWorker(stack: StackHandle): Promise<{ screen: unknown; pendingSafety: number | undefined }> {
  const metricsUrl = stack.metricsUrls()['control-worker'];
  assert.ok(metricsUrl, `the control worker serves /metrics: ${JSON.stringify(stack.metricsUrls())}`);
  const readyz = (await (await fetch(metricsUrl.replace(/\/metrics$/, '/readyz'))).json()) as {
    safetyScreen?: unknown;
  };
  const metrics = await (await fetch(metricsUrl)).text();
  const sample = /^atelier_requests_pending_safety(?:\{[^}]*\})? (\d+)$/m.exec(metrics)?.[1];
  return { screen: readyz.safetyScreen, pendingSafety: sample === undefined ? undefined : Number(sample) };
}

describe('safety_outage: the safety service dies under load and comes back', () => {
  // Filled in before the stack starts (useChaosStack reads it in its own `before`, which runs after this one).
  const env: Record<string, string> = { ATELIER_CONTROL_QUEUE_METRICS_MS: '1000' };
  let safety: SafetyService | undefined;
  before(async () => {
    safety = new SafetyService(await freePort());
    await safety.start();
    env.ATELIER_SAFETY_URL = safety.url;
  });
  after(() => safety?.kill());
  const chaos = useChaosStack(env);

  test('requests park in pending_safety, clients are told, and each completes exactly once after', async () => {
    const { stack, socket } = chaos;
    assert.ok(safety);
    const times = new FrameTimes(socket);
    // The stack is up once the gateway is ready; the control worker's health endpoint may still be coming up.
    await eventually(
      async () => (await controlWorker(stack).catch(() => undefined))?.screen === 'safety-service',
      30_000,
      'the control worker to say (in /readyz) that it asks the safety service',
    );
    const inFlight = await sendAcceptedBurst(socket, 'safety-inflight', 3);
    await socket.waitFor((f) => f.requestId === inFlight[0] && f.status === 'generating', 60_000);

    const downAt = Date.now();
    await safety.kill();
    const parked = await sendAcceptedBurst(socket, 'safety-parked', PARKED);
    for (const id of parked)
      await socket.waitFor((f) => f.requestId === id && f.status === 'pending_safety', PARK_WITHIN_MS);
    await eventually(
      async () => (await controlWorker(stack)).pendingSafety === PARKED,
      20_000,
      `atelier_requests_pending_safety to count the ${PARKED} parked requests`,
    );
    for (const id of parked)
      assert.equal(times.at(id, 'status:generating'), undefined, `${id} reached no GPU unscreened`);

    await new Promise((r) => setTimeout(r, Math.max(0, downAt + MIN_OUTAGE_MS - Date.now())));
    const upAt = Date.now();
    await safety.start();
    const ids = [...inFlight, ...parked];
    await assertEachCompletedOnce(socket, ids);
    const recoveryMs = Math.max(0, ...ids.map((id) => (times.at(id, 'completed') ?? Infinity) - upAt));
    for (const id of parked) {
      const generating = times.at(id, 'status:generating');
      assert.ok(generating !== undefined && generating >= upAt, `${id} was screened once the service was back`);
    }
    // A parked request retries with backoff doubling from 2 s, so its next attempt comes within about as long as the
    // outage lasted; the breaker may hold it back one more open period; then it is generated and stored.
    const outageMs = upAt - downAt;
    assert.ok(
      recoveryMs < outageMs + SAFETY_BREAKER.openMs + 30_000,
      `answered ${recoveryMs} ms after the service came back (outage ${outageMs} ms)`,
    );
    const figures = countOutcomes((id) => socket.framesFor(id), ids);
    assert.deepEqual([figures.failedWithCode, figures.lost, figures.duplicates], [0, 0, 0]);
    process.stdout.write(`safety_outage ${JSON.stringify({ outageMs, parked: PARKED, inFlight: inFlight.length })}\n`);
    reportExperiment('safety_outage', { ...figures, recoveryMs });
  });
});
