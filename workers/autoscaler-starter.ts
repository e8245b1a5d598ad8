// The autoscaler's place in the control worker (issue 13). With ATELIER_AUTOSCALER=on every control worker of the
// region runs the autoscaler's activities and makes sure the region's autoscaler workflow runs (workflows/autoscaler.ts):
// signal-with-start of `autoscaler:<region>` with the policy it loaded, so the first control worker starts it, the
// others find it running, and each hands it the policy it was configured with. Temporal being down at start is
// retried every 5 s; the workflow then runs on whichever control worker polls the region's queue.
import { Client, Connection } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { createAutoscalerActivities } from '../activities/autoscaler';
import type { AutoscalerActivities } from '../core/activities';
import { controlTaskQueue } from '../core/gpu';
import { findRegion, regionFleets } from '../core/regions';
import { CapacityStore } from '../runtime/capacity-store';
import { loadAutoscalePolicy } from '../runtime/autoscale-policy-file';
import type { Logger } from '../runtime/logger';
import { atelierCounter, atelierGauge } from '../runtime/metrics';
import { parse, type OptionTable } from '../runtime/options';
import { loadRegionCatalogue } from '../runtime/region-catalogue';
import { checkDeploymentPattern, DEFAULT_DEPLOYMENT_PATTERN, KubernetesScaleDriver } from '../runtime/k8s-scale-driver';
import type { RedisClient } from '../runtime/redis';
import { RedisDesiredReplicas, type ScaleDriver } from '../runtime/scale-driver';
import { WorkerControlStore } from '../runtime/worker-control';
import { autoscaler, autoscalerPolicySignal, autoscalerWorkflowId } from '../workflows/autoscaler';

export interface AutoscalerOptions {
  /** Run the region's autoscaler (its workflow and activities) with the driver of `scaleDriver`. @default false */
  readonly autoscaler: boolean;
  /** JSON file of policy sections replacing seed 001's; empty: seed 001's numbers. @default '' */
  readonly autoscalePolicy: string;
  /** Time between two autoscaler rounds, ms. @default 15000 */
  readonly autoscaleIntervalMs: number;
  /**
   * What carries out the autoscaler's decisions: `local` (desired replicas in Redis, which `npm start`'s launcher
   * follows) or `kubernetes` (each fleet's Deployment, through its scale subresource). @default 'local'
   */
  readonly scaleDriver: ScaleDriverKind;
  /** Namespace of the GPU Deployments; empty: the kube config's (in a pod, its own), else `default`. @default '' */
  readonly k8sNamespace: string;
  /** GPU Deployment name per fleet, with {gpuType} and optionally {region}. @default 'atelier-gpu-{gpuType}' */
  readonly k8sDeploymentPattern: string;
  /** Bound of each Kubernetes API call of the scale driver, ms. @default 5000 */
  readonly k8sRequestTimeoutMs: number;
}

export const SCALE_DRIVERS = ['local', 'kubernetes'] as const;
export type ScaleDriverKind = (typeof SCALE_DRIVERS)[number];

export const AUTOSCALER_OPTIONS: OptionTable<AutoscalerOptions> = {
  autoscaler: {
    env: 'ATELIER_AUTOSCALER',
    doc: "Run the region's autoscaler workflow and its activities, with the driver of ATELIER_SCALE_DRIVER",
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
  scaleDriver: {
    env: 'ATELIER_SCALE_DRIVER',
    doc: "What carries out the autoscaler's decisions: local (desired replicas in Redis, followed by npm start's launcher) or kubernetes (each fleet's Deployment, via its scale subresource)",
    default: 'local',
    parse: (raw, env) => {
      if ((SCALE_DRIVERS as readonly string[]).includes(raw)) return raw as ScaleDriverKind;
      throw new TypeError(`${env}=${JSON.stringify(raw)}: expected one of ${SCALE_DRIVERS.join(', ')}`);
    },
  },
  k8sNamespace: {
    env: 'ATELIER_K8S_NAMESPACE',
    doc: "Namespace of the GPU Deployments the kubernetes scale driver scales (empty = the kube config's, in a pod its own; else default)",
    default: '',
    parse: parse.string,
  },
  k8sDeploymentPattern: {
    env: 'ATELIER_K8S_DEPLOYMENT_PATTERN',
    doc: "Name of each fleet's GPU Deployment, with {gpuType} and optionally {region}; without {region} the driver scales only its own region",
    default: DEFAULT_DEPLOYMENT_PATTERN,
    parse: (raw, env) => {
      try {
        return checkDeploymentPattern(raw);
      } catch (err) {
        throw new TypeError(`${env}: ${(err as Error).message}`);
      }
    },
  },
  k8sRequestTimeoutMs: {
    env: 'ATELIER_K8S_REQUEST_TIMEOUT_MS',
    doc: 'Bound of each Kubernetes API call of the kubernetes scale driver, ms',
    default: 5_000,
    parse: parse.int(100, 15_000),
  },
};

/** The options that choose and configure the scale driver. */
export type ScaleDriverOptions = Pick<
  AutoscalerOptions,
  'scaleDriver' | 'k8sNamespace' | 'k8sDeploymentPattern' | 'k8sRequestTimeoutMs'
>;

const LOCAL_DRIVER: ScaleDriverOptions = {
  scaleDriver: 'local',
  k8sNamespace: '',
  k8sDeploymentPattern: DEFAULT_DEPLOYMENT_PATTERN,
  k8sRequestTimeoutMs: 5_000,
};

/** The driver the options name: the local one over this process's Redis, or the region's Kubernetes Deployments. */
export function createScaleDriver(
  options: ScaleDriverOptions,
  region: string,
  redis: RedisClient,
  prefix: string,
): ScaleDriver {
  if (options.scaleDriver === 'local') return new RedisDesiredReplicas(redis, prefix);
  return new KubernetesScaleDriver({
    namespace: options.k8sNamespace,
    deploymentPattern: options.k8sDeploymentPattern,
    homeRegion: region,
    requestTimeoutMs: options.k8sRequestTimeoutMs,
    fleets: (fleetRegion) => {
      const spec = findRegion(loadRegionCatalogue(), fleetRegion);
      return spec ? regionFleets(spec) : [];
    },
  });
}

/**
 * The autoscaler's activities over this process's Redis, with the driver the options name (local when absent), and
 * its metrics:
 * `atelier_autoscaler_steps_total{fleet_region, gpu_type, action}` as steps are applied, and
 * `atelier_autoscaler_desired_replicas{fleet_region, gpu_type}` read from the driver at each scrape.
 */
export function autoscalerActivities(
  redis: RedisClient,
  prefix: string,
  registry: Registry,
  region: string,
  driverOptions: ScaleDriverOptions = LOCAL_DRIVER,
): AutoscalerActivities {
  const driver = createScaleDriver(driverOptions, region, redis, prefix);
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
