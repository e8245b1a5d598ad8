// Seed 001's worker health rules and recovery actions, as the GPU worker applies them: three failed probes in a row
// take it out of its queue, its own circuit breaker (3 failures / 2 successes / 30 s) removes it from the pool and
// reports it, a corrupted model is reloaded while it takes no work, a GPU error restarts it (or, when it persists,
// keeps it out and reports it), and ten distinct failed requests in an hour drain it.
import { describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { DistinctFailureWindow, HEALTH_CHECK, probeUnhealthy, recordProbe } from '../../core/worker-health';
import type { InferenceOutcome } from '../../activities/inference';
import type { FailureType } from '../../core/errors';
import type { ModelName } from '../../core/models';
import type { InferenceBackend } from '../../inference/backend';
import { InferenceError } from '../../inference/backend';
import { SimulatedGpuBackend } from '../../inference/simulated';
import { createLogger } from '../../runtime/logger';
import { GpuFaults, GPU_ERROR_PERSISTS_WITHIN_MS } from '../../workers/gpu-faults';
import { GpuHealth } from '../../workers/gpu-health';
import { adminRequest } from '../../client/admin-cli';

const log = createLogger('test', {}, 'silent');

/** Records holds as the supervised worker would keep them. */
class FakeSupervisor {
  readonly holds = new Map<string, string>();
  readonly events: string[] = [];
  state = 'running' as const;
  get running(): boolean {
    return this.holds.size === 0;
  }
  hold(reason: string, detail = reason): void {
    if (!this.holds.has(reason)) this.events.push(`hold ${reason}`);
    this.holds.set(reason, detail);
  }
  release(reason: string): void {
    if (this.holds.delete(reason)) this.events.push(`release ${reason}`);
  }
  heldFor(): Record<string, string> {
    return Object.fromEntries(this.holds);
  }
}

function faultsHarness(overrides: { previousGpuError?: number; reloadFailures?: number } = {}) {
  const supervised = new FakeSupervisor();
  const reports: string[] = [];
  const modelReports: [ModelName, boolean][] = [];
  const restarts: string[] = [];
  const drains: string[] = [];
  let reloadFailures = overrides.reloadFailures ?? 0;
  const reloads: ModelName[] = [];
  const backend = {
    reloadModel: (model: ModelName) => {
      reloads.push(model);
      if (reloadFailures-- > 0) return Promise.reject(new InferenceError('ModelCorrupted', 'still corrupted'));
      return Promise.resolve();
    },
  } as unknown as InferenceBackend;
  let now = 1_000_000;
  const faults = new GpuFaults({
    supervised,
    backends: new Map<ModelName, InferenceBackend>([['sdxl', backend]]),
    modelBreakers: { report: (model, ok) => modelReports.push([model, ok]) },
    reportForReplacement: (reason) => reports.push(reason),
    recordGpuError: () => Promise.resolve(overrides.previousGpuError),
    restartProcess: (reason) => restarts.push(reason),
    drain: (reason) => drains.push(reason),
    log,
    now: () => now,
    reloadBackoffMs: () => 1,
  });
  return {
    faults,
    supervised,
    reports,
    modelReports,
    restarts,
    drains,
    reloads,
    advance: (ms: number) => (now += ms),
    now: () => now,
  };
}

const fail = (failureType: FailureType, requestId = `r-${Math.random()}`): InferenceOutcome => ({
  model: 'sdxl',
  requestId,
  failureType,
});
const ok: InferenceOutcome = { model: 'sdxl', requestId: 'ok', failureType: undefined };

describe('health probes (seed 001: 3 consecutive failures)', () => {
  test('a probe is unhealthy after three failures in a row, and a pass clears it', () => {
    let record = recordProbe(undefined, false, 'down', 1);
    record = recordProbe(record, false, 'down', 2);
    assert.equal(probeUnhealthy(record), false, 'two failures are not yet unhealthy');
    record = recordProbe(record, false, 'down', 3);
    assert.equal(probeUnhealthy(record), true);
    assert.equal(HEALTH_CHECK.consecutiveFailuresBeforeUnhealthy, 3);
    assert.equal(probeUnhealthy(recordProbe(record, true, 'ok', 4)), false);
  });

  test('a worker whose Redis fails three probes takes no work, /readyz names the probe, and it comes back', async () => {
    const supervised = new FakeSupervisor();
    let redisUp = false;
    const health = new GpuHealth({
      supervised: supervised as never,
      backends: [new SimulatedGpuBackend({ gpuType: 'a10g', speedup: 1000 })],
      models: ['sdxl', 'flux'],
      redis: {
        ping: () => (redisUp ? Promise.resolve('PONG') : Promise.reject(new Error('timeout'))),
      },
      memory: () => Promise.resolve({ usedBytes: 0, totalBytes: 24 * 2 ** 30 }),
      onCuda: false,
      log,
    });
    await health.probeOnce();
    await health.probeOnce();
    assert.equal(supervised.holds.size, 0, 'two failures: still serving');
    await health.probeOnce();
    assert.deepEqual(health.unhealthy(), ['redis']);
    assert.match(supervised.holds.get('unhealthy') ?? '', /redis/);
    assert.deepEqual((health.describe() as { unhealthy: string[] }).unhealthy, ['redis']);
    redisUp = true;
    await health.probeOnce();
    assert.equal(supervised.holds.size, 0, 'a passing probe lets it take work again');
    assert.equal(health.live, true, 'Redis is a readiness matter, not liveness');
  });

  test('a worker cut off from Temporal stops polling after three failed probes of the frontend', async () => {
    const supervised = new FakeSupervisor();
    let reachable = false;
    const health = new GpuHealth({
      supervised: supervised as never,
      backends: [],
      models: [],
      redis: { ping: () => Promise.resolve('PONG') },
      temporal: () => (reachable ? Promise.resolve() : Promise.reject(new Error('deadline exceeded'))),
      memory: undefined,
      onCuda: false,
      log,
    });
    for (let i = 0; i < 3; i++) await health.probeOnce();
    assert.deepEqual(health.unhealthy(), ['temporal']);
    assert.ok(supervised.holds.has('unhealthy'));
    reachable = true;
    await health.probeOnce();
    assert.equal(supervised.holds.size, 0);
  });

  test('VRAM: a device too small for a served model fails readiness; a lost CUDA device fails liveness', async () => {
    const supervised = new FakeSupervisor();
    const health = new GpuHealth({
      supervised: supervised as never,
      backends: [],
      models: ['flux'],
      redis: { ping: () => Promise.resolve('PONG') },
      memory: () => Promise.resolve(undefined),
      onCuda: true,
      log,
    });
    for (let i = 0; i < 3; i++) await health.probeOnce();
    assert.deepEqual(health.unhealthy().sort(), ['device', 'vram']);
    assert.equal(health.live, false, 'no device: /healthz fails so the process is restarted');
    const small = new GpuHealth({
      supervised: new FakeSupervisor() as never,
      backends: [],
      models: ['flux'],
      redis: { ping: () => Promise.resolve('PONG') },
      memory: () => Promise.resolve({ usedBytes: 0, totalBytes: 16 * 2 ** 30 }),
      onCuda: false,
      log,
    });
    for (let i = 0; i < 3; i++) await small.probeOnce();
    assert.deepEqual(small.unhealthy(), ['vram']);
    assert.match(JSON.stringify(small.describe()), /flux need more/);
  });
});

describe('worker circuit breaker (seed 001 per_worker: 3 / 2 / 30 s)', () => {
  test('three worker faults remove it from the pool and report it; 30 s later it trials; two successes close it', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const h = faultsHarness();
      h.faults.onOutcome(fail('InferenceFailed'));
      h.faults.onOutcome(fail('OutOfMemory'));
      h.faults.onOutcome(fail('InferenceFailed'));
      assert.equal(h.faults.breakerState, 'CLOSED', 'out-of-memory is the request, not the worker');
      h.faults.onOutcome(fail('InferenceFailed'));
      assert.equal(h.faults.breakerState, 'OPEN');
      assert.ok(h.supervised.holds.has('breaker'), 'open: it stops polling');
      assert.equal(h.reports.length, 1, 'and is reported for replacement');
      h.advance(30_000);
      mock.timers.tick(30_000);
      assert.equal(h.faults.breakerState, 'HALF_OPEN');
      assert.ok(!h.supervised.holds.has('breaker'), 'half-open: it polls again, as a trial');
      h.faults.onOutcome(ok);
      assert.equal(h.faults.breakerState, 'HALF_OPEN');
      h.faults.onOutcome(ok);
      assert.equal(h.faults.breakerState, 'CLOSED');
      h.faults.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('a failure while half-open opens it again at once', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const h = faultsHarness();
      for (let i = 0; i < 3; i++) h.faults.onOutcome(fail('GpuError'));
      h.advance(30_000);
      mock.timers.tick(30_000);
      h.faults.onOutcome(fail('InferenceFailed'));
      assert.equal(h.faults.breakerState, 'OPEN');
      assert.ok(h.supervised.holds.has('breaker'));
      h.faults.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('model faults go to the model breaker; out-of-memory and shutdown hand-backs do not', () => {
    const h = faultsHarness();
    h.faults.onOutcome(fail('ModelNotFound'));
    h.faults.onOutcome(fail('OutOfMemory'));
    h.faults.onOutcome(ok);
    assert.deepEqual(h.modelReports, [
      ['sdxl', false],
      ['sdxl', true],
    ]);
    assert.equal(h.faults.breakerState, 'CLOSED', 'ModelNotFound is the fleet configuration, not the worker');
  });
});

describe('recovery actions', () => {
  test('MODEL_CORRUPTION: the worker takes no work until the model is reloaded, retrying failed reloads', async () => {
    const h = faultsHarness({ reloadFailures: 3 });
    h.faults.onOutcome(fail('ModelCorrupted'));
    assert.ok(h.supervised.holds.has('reload:sdxl'), 'out of the queue while it reloads');
    h.faults.onOutcome(fail('ModelCorrupted'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(h.reloads, ['sdxl', 'sdxl', 'sdxl', 'sdxl'], 'one reload at a time, retried until it verifies');
    assert.ok(!h.supervised.holds.has('reload:sdxl'), 'reloaded: it takes work again');
    assert.equal(
      h.modelReports.filter(([, ok]) => !ok).length,
      2 + 3,
      'both failed runs and the three failed reloads count against the model breaker',
    );
    assert.ok(
      h.reports.some((r) => /failed to reload 3 times/.test(r)),
      `reported after three failed reloads: ${JSON.stringify(h.reports)}`,
    );
  });

  test('GPU error: the process restarts; if the device failed again since the last restart, it stays out', async () => {
    const first = faultsHarness();
    first.faults.onOutcome(fail('GpuError'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(first.supervised.holds.has('gpu-error'));
    assert.equal(first.restarts.length, 1, 'restart_worker_process');
    assert.equal(first.reports.length, 0);

    const again = faultsHarness({ previousGpuError: 1_000_000 - GPU_ERROR_PERSISTS_WITHIN_MS / 2 });
    again.faults.onOutcome(fail('GpuError'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(again.restarts.length, 0, 'a persisting error does not restart in a loop');
    assert.ok(again.supervised.holds.has('gpu-error'), 'it takes no work');
    assert.match(again.reports[0] ?? '', /persists/, 'if_persists: replace_instance');
  });

  test('ten distinct failed requests within an hour drain the worker; repeats of one request count once', () => {
    const h = faultsHarness();
    for (let i = 0; i < 5; i++) h.faults.onOutcome(fail('InferenceFailed', 'same'));
    assert.equal(h.drains.length, 0);
    const window = new DistinctFailureWindow(3, 1000);
    assert.equal(window.record('a', 0), false);
    assert.equal(window.record('b', 500), false);
    assert.equal(window.record('c', 1200), false, '`a` left the window');
    for (let i = 0; i < 9; i++) {
      h.advance(60_000);
      h.faults.onOutcome(fail('InferenceFailed', `distinct-${i}`));
    }
    assert.equal(h.drains.length, 1);
    assert.ok(h.reports.some((r) => /10 distinct requests/.test(r)));
    h.faults.stop();
  });
});

describe('npm run admin', () => {
  test('maps commands to admin API routes and refuses anything else', () => {
    assert.deepEqual(adminRequest(['workers']), { method: 'GET', path: '/admin/workers' });
    assert.deepEqual(adminRequest(['regions']), { method: 'GET', path: '/admin/regions' });
    assert.deepEqual(adminRequest(['pause', 'fleet', 'a10g'], { region: 'us-east' }), {
      method: 'POST',
      path: '/admin/fleets/a10g/pause?region=us-east',
    });
    assert.deepEqual(adminRequest(['drain', 'worker', 'host:1:a10g']), {
      method: 'POST',
      path: '/admin/workers/host%3A1%3Aa10g/drain',
    });
    assert.deepEqual(adminRequest(['keys']), { method: 'GET', path: '/admin/keys' });
    assert.deepEqual(adminRequest(['keys', 'create', 'erin'], { tiers: 'turbo,fast', rate: '30', weight: '2' }), {
      method: 'POST',
      path: '/admin/keys',
      body: { userId: 'erin', plan: { tiers: ['turbo', 'fast'], ratePerMinute: 30, fairnessWeight: 2 } },
    });
    assert.deepEqual(adminRequest(['keys', 'revoke', 'ab12']), {
      method: 'DELETE',
      path: '/admin/keys/ab12',
    });
    assert.throws(() => adminRequest(['keys', 'create', 'erin'], { rate: 'lots' }), /--rate lots: not a number/);
    assert.throws(() => adminRequest(['stop', 'fleet', 'a10g']), /Unknown command/);
    assert.throws(() => adminRequest(['pause', 'gpu', 'a10g']), /Expected "fleet" or "worker"/);
  });
});
