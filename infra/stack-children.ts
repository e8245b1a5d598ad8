// The local stack's Node children (the workers and the gateway): their environment, built from the settings every
// process shares, and the supervised processes that run our compiled entry points.
import path from 'node:path';
import { sharedOptionsEnv } from '../runtime/shared-options';
import { childLifelineArgs, spawnService } from './processes';
import { repoRoot } from './repo-root';
import type { LaunchContext } from './stack-context';
import { regionChildName, regionEnv, type RegionPlan } from './stack-regions';
import type { StackOptions } from './stack-options';
import { Supervisor } from './supervisor';

export const ENTRY_POINTS = {
  controlWorker: { script: 'dist/workers/control-worker.js', source: 'workers/control-worker.ts' },
  gpuWorker: { script: 'dist/workers/gpu-worker.js', source: 'workers/gpu-worker.ts' },
  gateway: { script: 'dist/gateway/main.js', source: 'gateway/main.ts' },
} as const;

/** What every Node child gets: the shared settings as resolved here, and where the stack keeps its data. */
export function childEnvironment(options: StackOptions, dataDir: string): Record<string, string> {
  const storageDir = options.storageDir ? path.resolve(options.storageDir) : path.join(dataDir, 'objects');
  return {
    ...sharedOptionsEnv({ ...options, storageDir }),
    ATELIER_DATA_DIR: dataDir,
    // Verified copies of the ONNX models the GPU workers serve (one cache, shared: files are renamed into place).
    ATELIER_MODEL_CACHE_DIR: path.join(dataDir, 'models'),
    ATELIER_GATEWAY_HOST: options.gatewayHost,
    ATELIER_GATEWAY_PORT: String(options.gatewayPort),
    ATELIER_GPU_TYPES: options.gpuTypes.join(','),
    ATELIER_AUTOSCALER: String(options.autoscaler),
    // Local autoscaling: a policy sized for one machine and a round every 5 s, unless the environment names others.
    ...(options.autoscaler
      ? {
          ATELIER_AUTOSCALE_POLICY:
            process.env.ATELIER_AUTOSCALE_POLICY ?? path.join(repoRoot(), 'config', 'autoscale-local.json'),
          ATELIER_AUTOSCALE_INTERVAL_MS: process.env.ATELIER_AUTOSCALE_INTERVAL_MS ?? '5000',
        }
      : {}),
    // Workers cancel in-flight activities (to be retried elsewhere) this long after SIGTERM; kept below our
    // SIGKILL deadline so they always get to close their connections.
    ATELIER_WORKER_SHUTDOWN_GRACE_MS: String(Math.max(0, options.shutdownTimeoutMs - 5_000)),
  };
}

/** A supervised Node process running one of our entry points. */
export function nodeChild(
  spec: { name: string; script: string; env: Record<string, string>; stopGraceMs: number },
  baseEnv: Record<string, string>,
  ctx: LaunchContext,
): Supervisor {
  const root = repoRoot();
  const lifeline = childLifelineArgs(root);
  return new Supervisor(
    spec.name,
    () => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...baseEnv, ...spec.env, ...ctx.extraEnv };
      // Set by `node --test` for its own subprocesses; our children are servers, not test files.
      delete env.NODE_TEST_CONTEXT;
      const child = spawnService({
        name: spec.name,
        command: process.execPath,
        args: [...lifeline, path.join(root, spec.script)],
        env,
        cwd: root,
        onLine: (line) => ctx.onOutput(spec.name, line),
        ownProcessGroup: true,
      });
      return Promise.resolve({
        pid: child.process.pid,
        exited: child.exited,
        stop: async () => void (await child.stop({ graceMs: spec.stopGraceMs })),
        signal: (signal: NodeJS.Signals) => child.process.kill(signal),
      });
    },
    ctx.log,
  );
}

/** A region's Node workers: its control worker and one GPU worker per fleet, each with its health and metrics port. */
export function workerChildren(
  options: StackOptions,
  plan: RegionPlan,
  plans: readonly RegionPlan[],
  baseEnv: Record<string, string>,
  healthPorts: ReadonlyMap<string, number>,
  ctx: LaunchContext,
): Supervisor[] {
  const worker = (name: string, script: string, env: Record<string, string>): Supervisor => {
    const childName = regionChildName(plan, name);
    return nodeChild(
      {
        name: childName,
        script,
        env: {
          ...regionEnv(plan, plans, baseEnv.ATELIER_STORAGE_DIR ?? ''),
          ...env,
          ATELIER_WORKER_HEALTH_PORT: String(healthPorts.get(childName)),
        },
        stopGraceMs: options.shutdownTimeoutMs,
      },
      baseEnv,
      ctx,
    );
  };
  return [
    worker('control-worker', ENTRY_POINTS.controlWorker.script, {}),
    ...plan.gpuTypes.map((gpuType) =>
      worker(`gpu-worker[${gpuType}]`, ENTRY_POINTS.gpuWorker.script, { ATELIER_GPU_TYPE: gpuType }),
    ),
  ];
}

/** A region's gateway. */
export function gatewayChild(
  plan: RegionPlan,
  plans: readonly RegionPlan[],
  adminToken: string,
  baseEnv: Record<string, string>,
  ctx: LaunchContext,
): Supervisor {
  return nodeChild(
    {
      name: regionChildName(plan, 'gateway'),
      script: ENTRY_POINTS.gateway.script,
      env: { ...regionEnv(plan, plans, baseEnv.ATELIER_STORAGE_DIR ?? ''), ATELIER_ADMIN_TOKEN: adminToken },
      stopGraceMs: 15_000,
    },
    baseEnv,
    ctx,
  );
}
