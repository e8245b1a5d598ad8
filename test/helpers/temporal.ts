// A real Temporal for tests: the Temporal CLI dev server (same binary, search attributes and dynamic config as the
// local stack, via infra/temporal.ts), and a harness that runs the production control worker and GPU workers
// against it with real activities: the rules-v1 safety screen, a temporary filesystem object store, the real
// Redis event log and the simulated GPU backend (sped up), plus, where a fleet asks for it, the ONNX Runtime backend
// created the way the GPU worker creates it. Tests may wrap activities to inject failures.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createControlActivities, createInferenceActivities, backendsByModel } from '../../activities';
import { RulesPromptScreen, type PromptScreen } from '../../activities/safety';
import { SimulatedGpuBackend } from '../../inference/simulated';
import type { InferenceBackend } from '../../inference/backend';
import { resolveOnnxBackendOptions, type OnnxBackend, type OnnxBackendOptions } from '../../inference/onnx';
import type { SequencedEvent } from '../../core/events';
import type { GpuType } from '../../core/gpu';
import { MODEL_NAMES } from '../../core/models';
import { validateGenerate, type GenerationRequest } from '../../core/request';
import { startGenerationOptions } from '../../core/start-options';
import { createLogger } from '../../runtime/logger';
import { bundleGenerationWorkflows } from '../../workers/workflow-bundle';
import { localTestServerConfig } from '../../infra/temporal';
import { RedisEventLog, recordAccepted } from '../../runtime/event-log';
import { FsObjectStore } from '../../runtime/object-store';
import { controlWorkerOptions } from '../../workers/control-worker';
import { createInferenceBackends, gpuWorkerOptions } from '../../workers/gpu-worker';
import { defaultRelaxSlots, RelaxLane } from '../../workers/relax-lane';
import { within } from './deadline';
import { testRedis, type TestRedis } from './redis';

let runtimeInstalled = false;

/** SDK logs at ERROR (TEMPORAL_TEST_LOG_LEVEL=WARN for more): tests inject failures that the SDK would log as warnings. */
function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger((process.env.TEMPORAL_TEST_LOG_LEVEL as 'WARN' | undefined) ?? 'ERROR'),
    // The SDK would otherwise take SIGTERM to start a graceful worker shutdown instead of exiting, and a test file
    // that the runner stops after its timeout would then never exit.
    shutdownSignals: [],
  });
}

/**
 * Starts a Temporal CLI dev server for this test file. The binary is TEMPORAL_CLI_PATH, else the provisioned one
 * (`localTestServerConfig` explains how to get it).
 */
export async function createTemporalTestEnv(): Promise<TestWorkflowEnvironment> {
  installQuietRuntime();
  const env = await TestWorkflowEnvironment.createLocal({
    server: { ...localTestServerConfig(), log: { format: 'pretty', level: 'error' } },
  });
  const teardown = env.teardown.bind(env);
  env.teardown = () => within('the Temporal test environment (dev server and connections)', 30_000, teardown);
  return env;
}

let bundle: Promise<{ code: string }> | undefined;

/** The production workflow bundle (same options and interceptors), built once per test process. */
export function testWorkflowBundle(): Promise<{ code: string }> {
  bundle ??= bundleGenerationWorkflows('plain', { logger: new DefaultLogger('WARN') }).then(({ code }) => ({ code }));
  return bundle;
}

type ControlActivities = ReturnType<typeof createControlActivities>;
type InferenceActivities = ReturnType<typeof createInferenceActivities>;

export interface GpuFleetConfig {
  /** Divides the simulated latency. @default 1000 */
  readonly speedup?: number;
  /** Concurrent inference jobs. @default 1 */
  readonly slots?: number;
  /**
   * Adds the ONNX backend ahead of the simulated one, as the GPU worker does by default (tiny-sd from
   * models/registry.json). `cacheDir` defaults to a temporary folder removed by stop().
   */
  readonly onnx?: Partial<OnnxBackendOptions>;
}

export interface GenerationHarnessOptions {
  /** GPU fleets to run, each one worker with the simulated backend; `{}` runs the control worker alone. @default { a10g: {} } */
  readonly gpus?: Partial<Record<GpuType, GpuFleetConfig>>;
  /** Replaces the rules-v1 screen (e.g. one that is down for a while). */
  readonly screen?: PromptScreen;
  /** Wraps the real control activities, e.g. to fail an attempt. */
  readonly wrapControl?: (activities: ControlActivities) => ControlActivities;
  /** Wraps the real inference activities of every GPU worker. */
  readonly wrapInference?: (activities: InferenceActivities, gpuType: GpuType) => InferenceActivities;
}

export interface GenerationHarness {
  readonly client: Client;
  /** Unique per harness, so harnesses sharing a server never share task queues. */
  readonly region: string;
  readonly store: FsObjectStore;
  readonly eventLog: RedisEventLog;
  readonly redis: TestRedis;
  /** Simulated backend of each running GPU fleet (counters tell whether inference ran). */
  readonly backends: ReadonlyMap<GpuType, SimulatedGpuBackend>;
  /** ONNX backend of each fleet that has one. */
  readonly onnxBackends: ReadonlyMap<GpuType, OnnxBackend>;
  /** A valid request in this harness's region; fields override the defaults. */
  request(fields?: Record<string, unknown>): GenerationRequest;
  /** Starts the workflow exactly as the gateway does. */
  start(req: GenerationRequest): Promise<WorkflowHandle>;
  /** Every event of a request's log, in seq order. */
  events(req: GenerationRequest): Promise<SequencedEvent[]>;
  /** Polls the log until `predicate` holds for some event; returns the log at that time. */
  waitForEvent(
    req: GenerationRequest,
    predicate: (e: SequencedEvent) => boolean,
    timeoutMs?: number,
  ): Promise<SequencedEvent[]>;
  stop(): Promise<void>;
}

/** One GPU worker's backends and Temporal worker options, built as workers/gpu-worker.ts builds them. */
interface GpuWorkerParts {
  /** The fleet queue's Worker and the relax lane's. */
  readonly options: Omit<WorkerOptions, 'connection' | 'namespace'>[];
  readonly simulated: SimulatedGpuBackend;
  readonly onnx: OnnxBackend | undefined;
  /** Closes the ONNX backend and removes a cache folder this function created. */
  readonly cleanup: () => Promise<void>;
}

async function gpuWorkerParts(args: {
  region: string;
  gpuType: GpuType;
  fleet: GpuFleetConfig;
  store: FsObjectStore;
  eventLog: RedisEventLog;
  workerId: string;
  wrapInference?: GenerationHarnessOptions['wrapInference'];
}): Promise<GpuWorkerParts> {
  const { gpuType, fleet } = args;
  const simulated = new SimulatedGpuBackend({ gpuType, speedup: fleet.speedup ?? 1000 });
  const fleetBackends: InferenceBackend[] = [simulated];
  let onnx: OnnxBackend | undefined;
  let cleanup = async (): Promise<void> => undefined;
  if (fleet.onnx) {
    const cacheDir = fleet.onnx.cacheDir ?? (await mkdtemp(path.join(os.tmpdir(), 'atelier-models-')));
    const onnxOptions = resolveOnnxBackendOptions({ ...fleet.onnx, cacheDir }, {});
    const [created] = await createInferenceBackends(
      { backends: ['onnx'], gpuType, simSpeedup: 1, onnx: onnxOptions },
      createLogger('test-onnx', { gpuType }),
    );
    const onnxBackend = created as OnnxBackend;
    onnx = onnxBackend;
    fleetBackends.unshift(onnxBackend);
    cleanup = async () => {
      await onnxBackend.close();
      if (fleet.onnx?.cacheDir === undefined) await rm(cacheDir, { recursive: true, force: true });
    };
  }
  const slots = fleet.slots ?? 1;
  const lane = new RelaxLane({ relaxSlots: defaultRelaxSlots(slots) });
  let inference = createInferenceActivities({
    backends: backendsByModel(fleetBackends, MODEL_NAMES),
    store: args.store,
    eventLog: args.eventLog,
    workerId: args.workerId,
    whenIdle: (signal) => lane.whenIdle(signal),
  });
  if (args.wrapInference) inference = args.wrapInference(inference, gpuType);
  const options = gpuWorkerOptions({
    region: args.region,
    gpuType,
    activities: inference,
    slots,
    lane,
    shutdownGraceMs: 1000,
  });
  return { options, simulated, onnx, cleanup };
}

/** A GPU worker started beside a harness's own (another machine of the same fleet, as far as Temporal can tell). */
export interface ExtraGpuWorker {
  /** The worker's identity, recorded in the history of every activity attempt it starts. */
  readonly identity: string;
  readonly simulated: SimulatedGpuBackend;
  readonly onnx: OnnxBackend | undefined;
  /** Shuts the worker down (in-flight activities report first) and closes its backends; later calls wait for the first. */
  stop(): Promise<void>;
}

/**
 * Starts one more GPU worker on `h`'s task queues for `gpuType` (or another region's, for failover between regions),
 * with its own backends and identity.
 */
export async function startExtraGpuWorker(
  env: TestWorkflowEnvironment,
  h: GenerationHarness,
  args: { gpuType: GpuType; fleet: GpuFleetConfig; identity: string; region?: string },
): Promise<ExtraGpuWorker> {
  const parts = await gpuWorkerParts({
    region: args.region ?? h.region,
    gpuType: args.gpuType,
    fleet: args.fleet,
    store: h.store,
    eventLog: h.eventLog,
    workerId: args.identity,
  });
  const workers = await Promise.all(
    parts.options.map((options) =>
      Worker.create({
        ...options,
        identity: args.identity,
        connection: env.nativeConnection,
        namespace: env.namespace ?? 'default',
      }),
    ),
  );
  const runs = Promise.all(workers.map((w) => w.run()));
  let stopped: Promise<void> | undefined;
  return {
    identity: args.identity,
    simulated: parts.simulated,
    onnx: parts.onnx,
    stop() {
      stopped ??= (async () => {
        for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
        await within(`GPU worker ${args.identity} shutdown`, 30_000, runs);
        await within(`the backends of GPU worker ${args.identity}`, 30_000, parts.cleanup);
      })();
      return stopped;
    },
  };
}

/** Starts a control worker and GPU workers on `env`'s server, wired like production (workers/*.ts options). */
export async function startGenerationHarness(
  env: TestWorkflowEnvironment,
  options: GenerationHarnessOptions = {},
): Promise<GenerationHarness> {
  const region = `t-${randomUUID().slice(0, 8)}`;
  const redis = await testRedis();
  const eventLog = new RedisEventLog(redis.redis, { prefix: redis.prefix });
  const storeDir = await mkdtemp(path.join(os.tmpdir(), 'atelier-wf-'));
  const store = new FsObjectStore(storeDir);
  const workflowBundle = await testWorkflowBundle();

  let control = createControlActivities({ screen: options.screen ?? new RulesPromptScreen(), store, eventLog });
  if (options.wrapControl) control = options.wrapControl(control);
  const workerOptions: Omit<WorkerOptions, 'connection' | 'namespace'>[] = [
    controlWorkerOptions({ region, activities: control, workflowBundle }),
  ];

  const backends = new Map<GpuType, SimulatedGpuBackend>();
  const onnxBackends = new Map<GpuType, OnnxBackend>();
  const cleanups: (() => Promise<void>)[] = [];
  for (const [gpuType, fleet] of Object.entries(options.gpus ?? { a10g: {} }) as [GpuType, GpuFleetConfig][]) {
    const parts = await gpuWorkerParts({
      region,
      gpuType,
      fleet,
      store,
      eventLog,
      workerId: `test:${gpuType}`,
      wrapInference: options.wrapInference,
    });
    backends.set(gpuType, parts.simulated);
    if (parts.onnx) onnxBackends.set(gpuType, parts.onnx);
    cleanups.push(parts.cleanup);
    workerOptions.push(...parts.options);
  }
  const workers = await Promise.all(
    workerOptions.map((o) =>
      Worker.create({ ...o, connection: env.nativeConnection, namespace: env.namespace ?? 'default' }),
    ),
  );
  const runs = workers.map((w) => w.run());

  let counter = 0;
  const harness: GenerationHarness = {
    client: env.client,
    region,
    store,
    eventLog,
    redis,
    backends,
    onnxBackends,
    request(fields = {}) {
      const result = validateGenerate(
        {
          type: 'generate',
          prompt: 'a lighthouse at dusk, oil painting',
          model: 'sdxl',
          tier: 'fast',
          width: 512,
          height: 512,
          steps: 8,
          seed: 42,
          ...fields,
        },
        {
          userId: 'user-1',
          region,
          now: Date.now(),
          newRequestId: () => `req-${Date.now()}-${++counter}`,
          newSeed: () => 7,
        },
      );
      if (!result.ok) throw new Error(`test request is invalid: ${JSON.stringify(result.problem)}`);
      return result.value;
    },
    async start(req) {
      const { workflowType, ...startOptions } = startGenerationOptions(req);
      await recordAccepted(eventLog, startOptions.workflowId);
      return env.client.workflow.start(workflowType, startOptions);
    },
    events(req) {
      return eventLog.read(startGenerationOptions(req).workflowId, 0);
    },
    async waitForEvent(req, predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const events = await harness.events(req);
        if (events.some(predicate)) return events;
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for an event; log so far: ${JSON.stringify(events)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await within(
        `the harness's Temporal workers (${workerOptions.map((o) => o.taskQueue).join(', ')})`,
        30_000,
        Promise.allSettled(runs),
      );
      for (const cleanup of cleanups) await within('the inference backends of the harness', 30_000, cleanup);
      await within('the test Redis clean-up', 10_000, redis.cleanup());
      await rm(storeDir, { recursive: true, force: true });
    },
  };
  return harness;
}
