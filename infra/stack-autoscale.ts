// The local scale driver's other half (issue 13): with ATELIER_AUTOSCALER=on, `npm start` runs the autoscaler in each
// region's control worker, and this loop matches the GPU worker processes of each fleet to the replicas the autoscaler
// asked for (runtime/scale-driver.ts, one Redis hash per region). A fleet keeps the worker the stack started with;
// extra ones are named `gpu-worker[<type>]#<n>` (`...@<region>` outside the home region). Scale-up starts one, which
// warms up like any GPU worker before it polls (ATELIER_ONNX_PRELOAD); scale-down stops the newest with SIGTERM, so
// it drains: it takes no new work, finishes what it holds and exits, and nothing is lost to a scale event. At most
// ATELIER_AUTOSCALE_LOCAL_MAX workers per fleet (this machine is not a GPU fleet; an ask above it is written back as
// what runs, as a cloud driver reports the replicas it got) and at least the first.
import { isGpuType, type GpuType } from '../core/gpu';
import { createRedis } from '../runtime/redis';
import { RedisDesiredReplicas } from '../runtime/scale-driver';
import { freePort } from './ports';
import type { LaunchContext } from './stack-context';
import { nodeChild, ENTRY_POINTS } from './stack-children';
import { regionChildName, regionEnv, type RegionPlan } from './stack-regions';
import type { StackOptions } from './stack-options';
import type { Supervisor } from './supervisor';

/** How often the launcher reads the desired replicas, ms. */
const RECONCILE_MS = 1_000;

export interface LocalFleetScaler {
  stop(): Promise<void>;
}

interface Fleet {
  readonly plan: RegionPlan;
  readonly gpuType: GpuType;
  /** Extra workers, oldest first. */
  readonly extras: Supervisor[];
  next: number;
}

/**
 * Starts the reconcile loop. `children` is the stack's map of supervised processes: extras are added to it while
 * they run (so `stack.children()` and `killChild` see them) and removed once stopped.
 */
export function startLocalFleetScaler(
  options: StackOptions,
  plans: readonly RegionPlan[],
  baseEnv: Record<string, string>,
  children: Map<string, Supervisor>,
  ctx: LaunchContext,
): LocalFleetScaler {
  const redis = createRedis(options.redisUrl, 'stack-autoscale', options.redisCommandTimeoutMs);
  redis.on('error', () => undefined);
  const driver = new RedisDesiredReplicas(redis, options.redisPrefix);
  const fleets = plans.flatMap((plan) =>
    plan.gpuTypes.map((gpuType): Fleet => ({ plan, gpuType, extras: [], next: 2 })),
  );
  let busy = false;
  let stopped = false;

  const spawnExtra = async (fleet: Fleet): Promise<void> => {
    const name = regionChildName(fleet.plan, `gpu-worker[${fleet.gpuType}]#${fleet.next++}`);
    const child = nodeChild(
      {
        name,
        script: ENTRY_POINTS.gpuWorker.script,
        env: {
          ...regionEnv(fleet.plan, plans, baseEnv.ATELIER_STORAGE_DIR ?? ''),
          ATELIER_GPU_TYPE: fleet.gpuType,
          ATELIER_WORKER_HEALTH_PORT: String(await freePort()),
        },
        stopGraceMs: options.shutdownTimeoutMs,
      },
      baseEnv,
      ctx,
    );
    fleet.extras.push(child);
    children.set(name, child);
    ctx.log.info({ worker: name }, `autoscaler: starting ${name}`);
    await child.start();
  };

  const drainNewest = async (fleet: Fleet): Promise<void> => {
    const child = fleet.extras.pop();
    if (!child) return;
    ctx.log.info({ worker: child.name }, `autoscaler: draining ${child.name}`);
    await child.stop();
    children.delete(child.name);
  };

  const reconcile = async (): Promise<void> => {
    for (const region of new Set(plans.map((p) => p.region))) {
      const desired = await driver.replicas(region);
      for (const fleet of fleets.filter((f) => f.plan.region === region)) {
        const asked = desired[fleet.gpuType];
        if (asked === undefined || !isGpuType(fleet.gpuType)) continue;
        const want = Math.max(1, Math.min(asked, options.autoscaleLocalMax));
        // Above the cap the driver says what it runs, as a cloud's would at its quota, and the autoscaler decides
        // from that. Below one it keeps the fleet's first worker and says nothing, or the two would argue every round.
        if (asked > want) await driver.setReplicas(region, fleet.gpuType, want);
        const have = 1 + fleet.extras.length;
        // One process at a time per fleet and round: starting a worker costs this machine a few seconds of CPU.
        if (want > have) await spawnExtra(fleet);
        else if (want < have) await drainNewest(fleet);
      }
    }
  };

  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    reconcile()
      .catch((err: unknown) => ctx.log.warn({ err }, 'autoscaler: could not reconcile the GPU workers'))
      .finally(() => (busy = false));
  }, RECONCILE_MS);

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(fleets.flatMap((f) => f.extras.splice(0).map((c) => c.stop())));
      redis.disconnect();
    },
  };
}
