// A GPU worker's health probes (seed 001 HEALTH_CHECK_CONFIG), run every interval (10 s):
//   liveness:  the process answers (the endpoint itself) and, under CUDA, the device is there and its memory readable
//              (an nvidia-smi reading); a failing device makes /healthz 503, so the orchestrator restarts the process;
//   readiness: models loaded or loadable (every backend ready); VRAM sufficient (the device holds the weights of every
//              model the worker serves: a worker placed on too small a GPU or MIG slice must not take work it would
//              fail with out-of-memory; memory in use is no measure, since onnxruntime's arena keeps what it once
//              took); Redis answering; Temporal's frontend answering (on a connection of its own, so a worker held
//              out of its queue still probes it, and a worker cut off from Temporal stops polling into nowhere).
// Three consecutive failures of a probe make the worker unhealthy: it holds (takes no new work) until the probe
// passes again. /readyz names the failing probe.
import { HEALTH_CHECK, probeUnhealthy, recordProbe, type ProbeRecord } from '../core/worker-health';
import type { ModelName } from '../core/models';
import { modelWeightsGb } from '../core/routing';
import type { InferenceBackend } from '../inference/backend';
import type { Logger } from '../runtime/logger';
import type { MemorySource } from './gpu-metrics';
import type { SupervisedWorker } from './worker-runtime';

export type ProbeName = 'device' | 'models' | 'vram' | 'redis' | 'temporal';

export interface GpuHealthDeps {
  readonly supervised: Pick<SupervisedWorker, 'hold' | 'release' | 'state' | 'running' | 'heldFor'>;
  readonly backends: readonly InferenceBackend[];
  /** The models this worker serves. */
  readonly models: readonly ModelName[];
  readonly redis: { ping(): Promise<string> };
  /** Asks Temporal's frontend something cheap within a deadline; rejects when it does not answer. */
  readonly temporal?: () => Promise<void>;
  /** Device memory: nvidia-smi under CUDA, the simulated GPU's model, or none (CPU). */
  readonly memory: MemorySource | undefined;
  /** Whether inference runs on a CUDA device (then the device probe runs). */
  readonly onCuda: boolean;
  readonly log: Logger;
  /** @default HEALTH_CHECK.intervalMs (10 s) */
  readonly intervalMs?: number;
}

export class GpuHealth {
  private readonly records = new Map<ProbeName, ProbeRecord>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: GpuHealthDeps) {}

  start(): void {
    const intervalMs = this.deps.intervalMs ?? HEALTH_CHECK.intervalMs;
    void this.probeOnce();
    this.timer = setInterval(() => void this.probeOnce(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Runs every probe once (one run at a time), then holds or releases the worker by the results. */
  probeOnce(): Promise<void> {
    this.running ??= this.runProbes().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Probes that have failed three times in a row. */
  unhealthy(): ProbeName[] {
    return [...this.records].filter(([, r]) => probeUnhealthy(r)).map(([name]) => name);
  }

  /** Liveness: false only when the device itself is gone (the process must restart). */
  get live(): boolean {
    return !probeUnhealthy(this.records.get('device'));
  }

  /** What /readyz shows: each probe's last result, the failing ones, and the Temporal connection. */
  describe(): Record<string, unknown> {
    return {
      probes: Object.fromEntries(this.records),
      unhealthy: this.unhealthy(),
      temporal: this.deps.supervised.state,
    };
  }

  private async runProbes(): Promise<void> {
    const results = await Promise.all([
      this.deps.onCuda ? this.probe('device', () => this.deviceProbe()) : undefined,
      this.probe('models', () => this.modelsProbe()),
      this.deps.memory ? this.probe('vram', () => this.vramProbe()) : undefined,
      this.probe('redis', () => this.redisProbe()),
      this.deps.temporal ? this.probe('temporal', () => this.temporalProbe()) : undefined,
    ]);
    const now = Date.now();
    for (const result of results) {
      if (!result) continue;
      const [name, ok, detail] = result;
      const before = this.records.get(name);
      const after = recordProbe(before, ok, detail, now);
      this.records.set(name, after);
      if (probeUnhealthy(after) && !probeUnhealthy(before)) {
        this.deps.log.error({ probe: name, detail }, `health probe ${name} failed 3 times in a row: unhealthy`);
      } else if (!probeUnhealthy(after) && probeUnhealthy(before)) {
        this.deps.log.warn({ probe: name }, `health probe ${name} passes again`);
      }
    }
    const failing = this.unhealthy();
    if (failing.length > 0) this.deps.supervised.hold('unhealthy', `failing probes: ${failing.join(', ')}`);
    else this.deps.supervised.release('unhealthy');
  }

  private async probe(name: ProbeName, run: () => Promise<string | undefined>): Promise<[ProbeName, boolean, string]> {
    try {
      const failure = await run();
      return [name, failure === undefined, failure ?? 'ok'];
    } catch (err) {
      return [name, false, err instanceof Error ? err.message : String(err)];
    }
  }

  private async deviceProbe(): Promise<string | undefined> {
    const memory = await this.deps.memory?.();
    return memory ? undefined : 'the CUDA device did not answer (no memory reading from nvidia-smi)';
  }

  private modelsProbe(): Promise<string | undefined> {
    const notReady = this.deps.backends.filter((b) => !b.status().ready).map((b) => b.name);
    return Promise.resolve(notReady.length > 0 ? `backends not ready: ${notReady.join(', ')}` : undefined);
  }

  private async vramProbe(): Promise<string | undefined> {
    const memory = await this.deps.memory?.();
    if (!memory || memory.totalBytes <= 0) return 'no device memory reading';
    const gib = 2 ** 30;
    const tooBig = this.deps.models.filter((m) => modelWeightsGb(m) * gib > memory.totalBytes);
    if (tooBig.length === 0) return undefined;
    return `the device has ${(memory.totalBytes / gib).toFixed(1)} GiB; ${tooBig.join(', ')} need more`;
  }

  private async temporalProbe(): Promise<string | undefined> {
    await this.deps.temporal?.();
    return undefined;
  }

  private async redisProbe(): Promise<string | undefined> {
    const answer = await this.deps.redis.ping();
    return answer === 'PONG' ? undefined : `unexpected PING answer ${answer}`;
  }
}
