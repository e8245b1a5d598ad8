// The autoscaler's place in the control worker (issue 13). With ATELIER_AUTOSCALER=on every control worker of the
// region runs the autoscaler's activities and makes sure the region's autoscaler workflow runs (workflows/autoscaler.ts):
// signal-with-start of `autoscaler:<region>` with the policy it loaded, so the first control worker starts it, the
// others find it running, and each hands it the policy it was configured with. Temporal being down at start is
// retried every 5 s; the workflow then runs on whichever control worker polls the region's queue.
import { Client, Connection } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { createAutoscalerActivities } from '../activities/autoscaler';
import type { AutoscalerActivities } from '../core/activities';
import { controlTaskQueue } from '../core/gpu';
import { CapacityStore } from '../runtime/capacity-store';
import { loadAutoscalePolicy } from '../runtime/autoscale-policy-file';
import type { Logger } from '../runtime/logger';
import { atelierCounter, atelierGauge } from '../runtime/metrics';
import { parse, type OptionTable } from '../runtime/options';
import { loadRegionCatalogue } from '../runtime/region-catalogue';
import { RedisDesiredReplicas } from '../runtime/scale-driver';
import { WorkerControlStore } from '../runtime/worker-control';
import { autoscaler, autoscalerPolicySignal, autoscalerWorkflowId } from '../workflows/autoscaler';

export interface AutoscalerOptions {
  /** Run the region's autoscaler (its workflow and activities) with the local driver. @default false */
  readonly autoscaler: boolean;
  /** JSON file of policy sections replacing seed 001's; empty: seed 001's numbers. @default '' */
  readonly autoscalePolicy: string;
  /** Time between two autoscaler rounds, ms. @default 15000 */
  readonly autoscaleIntervalMs: number;
}

export const AUTOSCALER_OPTIONS: OptionTable<AutoscalerOptions> = {
  autoscaler: {
    env: 'ATELIER_AUTOSCALER',
    doc: "Run the region's autoscaler workflow and its activities, with the local driver (desired replicas in Redis)",
    default: false,
    parse: parse.bool,
  },
  autoscalePolicy: {
    env: 'ATELIER_AUTOSCALE_POLICY',
    doc: "JSON file of autoscaling policy sections replacing seed 001's (e.g. config/autoscale-local.json); empty: the seed's",
    default: '',
    parse: parse.string,
  },
  autoscaleIntervalMs: {
    env: 'ATELIER_AUTOSCALE_INTERVAL_MS',
    doc: 'Time between two autoscaler rounds, ms',
    default: 15_000,
    parse: parse.int(1_000, 600_000),
  },
};

/**
 * The autoscaler's activities over this process's Redis, with the local driver, and its metrics:
 * `atelier_autoscaler_steps_total{fleet_region, gpu_type, action}` as steps are applied, and
 * `atelier_autoscaler_desired_replicas{fleet_region, gpu_type}` read from the driver at each scrape.
 */
export function autoscalerActivities(
  redis: Redis,
  prefix: string,
  registry: Registry,
  region: string,
): AutoscalerActivities {
  const driver = new RedisDesiredReplicas(redis, prefix);
  const steps = atelierCounter<'fleet_region' | 'gpu_type' | 'action'>(registry, {
    name: 'atelier_autoscaler_steps_total',
    help: 'Scale steps the autoscaler applied, by fleet and direction (their reasons are in its workflow history)',
    labelNames: ['fleet_region', 'gpu_type', 'action'],
  });
  atelierGauge<'fleet_region' | 'gpu_type'>(registry, {
    name: 'atelier_autoscaler_desired_replicas',
    help: "GPU workers the autoscaler asked the driver for, per fleet of this worker's region",
    labelNames: ['fleet_region', 'gpu_type'],
    async collect() {
      const desired = await driver.replicas(region).catch(() => ({}));
      this.reset();
      for (const [gpuType, n] of Object.entries(desired)) this.set({ fleet_region: region, gpu_type: gpuType }, n);
    },
  });
  return createAutoscalerActivities({
    capacity: new CapacityStore(redis, prefix),
    workers: new WorkerControlStore(redis, prefix),
    driver,
    catalogue: loadRegionCatalogue,
    onStep: (fleetRegion, step) =>
      steps.inc({ fleet_region: fleetRegion, gpu_type: step.gpuType, action: step.action }),
  });
}

/** Makes sure the region's autoscaler runs with this process's policy; returns how to stop trying. */
export function ensureAutoscaler(
  options: AutoscalerOptions & { region: string; temporalAddress: string; temporalNamespace: string },
  log: Logger,
): { stop(): Promise<void> } {
  const policy = loadAutoscalePolicy(options.autoscalePolicy);
  const connection = Connection.lazy({ address: options.temporalAddress });
  const client = new Client({ connection, namespace: options.temporalNamespace });
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const attempt = async (): Promise<void> => {
    try {
      await client.workflow.signalWithStart(autoscaler, {
        workflowId: autoscalerWorkflowId(options.region),
        taskQueue: controlTaskQueue(options.region),
        args: [{ region: options.region, policy, intervalMs: options.autoscaleIntervalMs }],
        signal: autoscalerPolicySignal,
        signalArgs: [policy],
      });
      log.info({ workflowId: autoscalerWorkflowId(options.region) }, 'autoscaler running with this policy');
    } catch (err) {
      if (stopped) return;
      log.warn({ err }, 'could not start or reach the autoscaler workflow; retrying in 5 s');
      retry = setTimeout(() => void attempt(), 5_000);
    }
  };
  void attempt();
  return {
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await connection.close().catch(() => undefined);
    },
  };
}
