// A GPU worker's membership of its fleet, assembled: health probes (gpu-health.ts), recovery from faults
// (gpu-faults.ts), operator orders and the registry (gpu-control.ts), what /healthz and /readyz say, and the metrics
// operators alert on: the worker's breaker, whether it takes work, and its reports for replacement.
import { Connection } from '@temporalio/client';
import os from 'node:os';
import type { RedisClient } from '../runtime/redis';
import type { Registry } from 'prom-client';
import type { InferenceOutcome } from '../activities/inference';
import { BREAKER_STATE_VALUE } from '../core/circuit-breaker';
import { HEALTH_CHECK } from '../core/worker-health';
import type { ModelName } from '../core/models';
import type { InferenceBackend } from '../inference/backend';
import type { DeviceMemory } from '../inference/telemetry';
import type { Logger } from '../runtime/logger';
import { atelierCounter, atelierGauge } from '../runtime/metrics';
import { ModelBreakers } from '../runtime/model-breakers';
import { WorkerControlStore } from '../runtime/worker-control';
import { GpuControl } from './gpu-control';
import { GpuFaults } from './gpu-faults';
import { GpuHealth } from './gpu-health';
import type { MemorySource } from './gpu-metrics';
import type { Readiness } from './health-server';
import type { SupervisedWorker } from './worker-runtime';

/** Process exit code after a GPU error: the launcher (or orchestrator) restarts the worker. EX_TEMPFAIL. */
export const EXIT_GPU_ERROR = 75;

export interface MembershipDeps {
  readonly identity: { readonly workerId: string; readonly region: string; readonly gpuType: string };
  readonly supervised: SupervisedWorker;
  readonly backends: readonly InferenceBackend[];
  readonly byModel: ReadonlyMap<ModelName, InferenceBackend>;
  readonly redis: RedisClient;
  readonly redisPrefix: string;
  readonly memory: MemorySource | undefined;
  readonly onCuda: boolean;
  /** Device ordinals, so a GPU error is remembered for this device across process restarts. */
  readonly deviceKey: string;
  readonly registry: Registry;
  readonly log: Logger;
  /** Ends the process after an ordered drain, with this exit code. */
  readonly shutdown: (reason: string, exitCode?: number) => void;
  readonly intervalMs?: number;
  /** Temporal's frontend, probed on a connection of the probe's own. Absent: no Temporal probe (tests). */
  readonly temporal?: { readonly address: string };
}

export interface Membership {
  readonly onOutcome: (outcome: InferenceOutcome) => void;
  readonly readiness: () => Readiness;
  readonly liveness: () => Readiness;
  /** Marks the worker as draining in the registry (called as any shutdown begins). */
  readonly markDraining: () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createMembership(deps: MembershipDeps): Membership {
  const { log, supervised, identity } = deps;
  const store = new WorkerControlStore(deps.redis, deps.redisPrefix);
  const reports = atelierCounter<'reason'>(deps.registry, {
    name: 'atelier_worker_replacement_reports_total',
    help: 'Times this worker reported itself for replacement (breaker open, persistent GPU error, failed reloads)',
  });
  const reportForReplacement = (reason: string): void => {
    log.error({ reason }, 'worker reported for replacement');
    reports.inc();
    store
      .reportForReplacement({ workerId: identity.workerId, reason, at: Date.now() })
      .catch((err: unknown) => log.warn({ err }, 'could not record the replacement report'));
  };
  const intervalMs = deps.intervalMs ?? HEALTH_CHECK.intervalMs;
  // The health probes read device memory every interval; /readyz shows the last reading. onnxruntime-node has no API
  // for what a session holds on the device, so the figure is the driver's (nvidia-smi) or the simulated GPU's model;
  // a CPU worker has none and /readyz leaves the field out.
  let lastMemory: DeviceMemory | undefined;
  const source = deps.memory;
  const memory = source ? () => source().then((m) => (lastMemory = m)) : undefined;
  const temporalProbe = deps.temporal ? frontendProbe(deps.temporal.address, intervalMs) : undefined;
  const health = new GpuHealth({
    supervised,
    backends: deps.backends,
    models: [...deps.byModel.keys()],
    redis: deps.redis,
    memory,
    onCuda: deps.onCuda,
    log,
    intervalMs,
    ...(temporalProbe ? { temporal: temporalProbe.check } : {}),
  });
  const faults = new GpuFaults({
    supervised,
    backends: deps.byModel,
    modelBreakers: new ModelBreakers(deps.redis, deps.redisPrefix, log),
    reportForReplacement,
    recordGpuError: async () => {
      const key = `${deps.redisPrefix}gpu-error:${os.hostname()}:${identity.gpuType}:${deps.deviceKey}`;
      const previous = await deps.redis.set(key, String(Date.now()), 'PX', 600_000, 'GET');
      return previous === null ? undefined : Number(previous);
    },
    restartProcess: (reason) => deps.shutdown(reason, EXIT_GPU_ERROR),
    drain: (reason) => deps.shutdown(reason, 0),
    log,
  });
  const ready = (): boolean => supervised.running && health.unhealthy().length === 0;
  const control = new GpuControl({
    store,
    supervised,
    identity,
    status: () => ({ ready: ready(), breaker: faults.breakerState, ...dutyCycleOf(deps.backends) }),
    drain: (reason) => deps.shutdown(reason, 0),
    log,
    intervalMs,
  });
  atelierGauge<'breaker'>(deps.registry, {
    name: 'atelier_circuit_breaker_state',
    help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open (here: this worker, seed 001 per_worker)',
    labelNames: ['breaker'],
    collect() {
      this.set({ breaker: 'worker' }, BREAKER_STATE_VALUE[faults.breakerState]);
    },
  });
  atelierGauge(deps.registry, {
    name: 'atelier_worker_taking_work',
    help: '1 while this worker polls its task queue; 0 while it is held (paused, unhealthy, breaker open, reloading)',
    collect() {
      this.set(supervised.running ? 1 : 0);
    },
  });
  return {
    onOutcome: (outcome) => faults.onOutcome(outcome),
    readiness: () => ({
      ready: ready(),
      holds: supervised.heldFor(),
      health: health.describe(),
      faults: faults.describe(),
      ...(lastMemory ? { deviceMemory: lastMemory } : {}),
    }),
    liveness: () => ({ ready: health.live, ...(health.live ? {} : { failing: 'device' }) }),
    markDraining: () => control.markDraining(),
    async start() {
      health.start();
      await control.start();
    },
    async stop() {
      health.stop();
      await temporalProbe?.close();
      faults.stop();
      await control.stop();
    },
  };
}

/**
 * A probe of Temporal's frontend on a client connection of its own (made at the first probe, kept after): one cheap
 * call, GetSystemInfo, that must answer within half the probe interval.
 */
function frontendProbe(
  address: string,
  intervalMs: number,
): { check: () => Promise<void>; close: () => Promise<void> } {
  let connection: Promise<Connection> | undefined;
  const timeoutMs = Math.max(500, Math.floor(intervalMs / 2));
  return {
    async check() {
      connection ??= Connection.connect({ address, connectTimeout: timeoutMs }).catch((err: unknown) => {
        connection = undefined;
        throw err;
      });
      const conn = await connection;
      await conn.withDeadline(Date.now() + timeoutMs, () => conn.workflowService.getSystemInfo({}));
    },
    async close() {
      await (await connection?.catch(() => undefined))?.close();
    },
  };
}

/** The mean duty cycle of the worker's backends, for its announcements (the autoscaler's utilization). */
function dutyCycleOf(backends: readonly InferenceBackend[]): { dutyCycle?: number } {
  const fractions = backends.flatMap((b) => (b.telemetry ? [b.telemetry.busyFraction()] : []));
  return fractions.length > 0 ? { dutyCycle: fractions.reduce((sum, f) => sum + f, 0) / fractions.length } : {};
}
