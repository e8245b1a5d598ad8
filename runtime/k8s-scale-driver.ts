// The autoscaler's Kubernetes scale driver (issue 14): each GPU fleet is a Deployment, and the driver reads and sets
// its replicas through the Deployment's scale subresource (`deployments/{name}/scale`, kind Scale of autoscaling/v1),
// which is all the RBAC it needs: get and patch on `deployments/scale`. Kubernetes then starts pods (which warm up
// before they poll) and stops the ones it removes with SIGTERM, which drains them within the pod's grace period.
//
// Deployment names come from a pattern with `{gpuType}` and, optionally, `{region}`:
// - without `{region}` (the default, `atelier-gpu-{gpuType}`) each region is its own cluster or namespace, and the
//   driver scales only its home region's fleets; another region (a control worker that adopted a dead region's
//   queue) has no figures here, and setting its replicas is refused, since scaling our fleets for it would be wrong;
// - with `{region}` (e.g. `atelier-gpu-{gpuType}-{region}`) one namespace holds several regions' fleets, and the
//   driver scales any of them.
import type {
  AppsV1Api,
  ConfigurationOptions,
  KubeConfig,
  ObservableMiddleware,
  V1Scale,
} from '@kubernetes/client-node' with {
  'resolution-mode': 'import',
};
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GPU_TYPES, type GpuType } from '../core/gpu';
import type { ScaleDriver } from './scale-driver';

export const DEFAULT_DEPLOYMENT_PATTERN = 'atelier-gpu-{gpuType}';
/** The manager of spec.replicas in the Deployment's managedFields (`kubectl get -o yaml --show-managed-fields`). */
export const FIELD_MANAGER = 'atelier-autoscaler';
/** Kubernetes keeps replicas in an int32. */
const MAX_REPLICAS = 2_147_483_647;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export interface KubernetesScaleOptions {
  /** Namespace of the GPU Deployments. */
  readonly namespace: string;
  /** Deployment name per fleet, with `{gpuType}` and optionally `{region}`. @default 'atelier-gpu-{gpuType}' */
  readonly deploymentPattern: string;
  /** The region this driver's cluster serves: the only one it scales when the pattern has no `{region}`. */
  readonly homeRegion: string;
  /** Bound of each API call, ms. */
  readonly requestTimeoutMs: number;
  /**
   * The fleets replicas() reads in a region (the region catalogue's): a Deployment the autoscaler never scales is not
   * read, nor need the RBAC Role name it. @default every GPU type
   */
  readonly fleets?: (region: string) => readonly GpuType[];
}

/** The API client of the kube config, and the per-call options of reads and of merge patches. */
interface ApiClient {
  readonly api: AppsV1Api;
  readonly namespace: string;
  readonly read: ConfigurationOptions;
  readonly mergePatch: ConfigurationOptions;
}

/** A fleet's Scale: what it was asked for (spec) and what its Deployment runs (status). */
export interface FleetScale {
  readonly desired: number;
  readonly running: number;
}

/** An API call that failed: HTTP status (0 = no answer), and the API server's own message. Keeps `cause`. */
export class KubernetesScaleError extends Error {
  override readonly name = 'KubernetesScaleError';
  constructor(
    message: string,
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Checks a Deployment name pattern; throws a TypeError that says what is wrong. */
export function checkDeploymentPattern(pattern: string): string {
  const placeholders = pattern.match(/\{[^}]*\}/g) ?? [];
  const unknown = placeholders.filter((p) => p !== '{gpuType}' && p !== '{region}');
  if (!pattern.includes('{gpuType}') || unknown.length > 0) {
    throw new TypeError(
      `deployment pattern ${JSON.stringify(pattern)}: needs {gpuType}, and may have {region}` +
        (unknown.length > 0 ? `; unknown ${unknown.join(', ')}` : ''),
    );
  }
  return pattern;
}

/** The Deployment name of a fleet, or undefined when the pattern has no `{region}` and `region` is not home. */
export function deploymentName(options: KubernetesScaleOptions, region: string, gpuType: GpuType): string | undefined {
  const perRegion = options.deploymentPattern.includes('{region}');
  if (!perRegion && region !== options.homeRegion) return undefined;
  const name = options.deploymentPattern.replaceAll('{gpuType}', gpuType).replaceAll('{region}', region);
  if (!DNS_SUBDOMAIN.test(name)) {
    throw new TypeError(`Deployment name ${JSON.stringify(name)} (from ${options.deploymentPattern}) is not valid`);
  }
  return name;
}

/**
 * Kube config as the process finds it: in a pod (KUBERNETES_SERVICE_HOST set) its service account; elsewhere
 * KUBECONFIG or ~/.kube/config, as kubectl does. No config at all is an error here, where the client library
 * would quietly try http://localhost:8080.
 */
export async function loadKubeConfig(): Promise<KubeConfig> {
  const env = process.env;
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
    return kc;
  }
  if (!env.KUBECONFIG && !existsSync(path.join(os.homedir(), '.kube', 'config'))) {
    throw new TypeError('ATELIER_SCALE_DRIVER=kubernetes: not in a cluster, and no KUBECONFIG or ~/.kube/config');
  }
  kc.loadFromDefault();
  return kc;
}

/** The namespace of the kube config's current context (in a pod, its service account's), else `default`. */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace?.trim() || 'default';
}

export class KubernetesScaleDriver implements ScaleDriver {
  private client: Promise<ApiClient> | undefined;

  /**
   * @param kubeConfig loaded on the first call (the client library is an ES module, imported then); a failed load
   * is tried again on the next call. An empty `options.namespace` is the kube config's (see contextNamespace).
   */
  constructor(
    private readonly options: KubernetesScaleOptions,
    private readonly kubeConfig: () => Promise<KubeConfig> = loadKubeConfig,
  ) {
    checkDeploymentPattern(options.deploymentPattern);
  }

  async replicas(region: string): Promise<Partial<Record<GpuType, number>>> {
    const scales = await this.fleetScales(region);
    const out: Partial<Record<GpuType, number>> = {};
    for (const gpuType of GPU_TYPES) {
      const scale = scales[gpuType];
      if (scale) out[gpuType] = scale.desired;
    }
    return out;
  }

  /** Desired and running replicas of each fleet of the region that has a Deployment; the others are absent. */
  async fleetScales(region: string): Promise<Partial<Record<GpuType, FleetScale>>> {
    const fleets = this.options.fleets?.(region) ?? GPU_TYPES;
    const named = fleets.flatMap((gpuType) => {
      const name = deploymentName(this.options, region, gpuType);
      return name ? [{ gpuType, name }] : [];
    });
    if (named.length === 0) return {};
    const { api, namespace, read: callOptions } = await this.connect();
    const read = await Promise.all(
      named.map(async ({ gpuType, name }) => {
        try {
          const scale = await api.readNamespacedDeploymentScale({ name, namespace }, callOptions);
          return { gpuType, scale: fleetScale(scale) };
        } catch (err) {
          if (statusOf(err) === 404) return { gpuType, scale: undefined };
          throw this.failure('GET', namespace, name, err);
        }
      }),
    );
    const out: Partial<Record<GpuType, FleetScale>> = {};
    for (const { gpuType, scale } of read) if (scale) out[gpuType] = scale;
    return out;
  }

  async setReplicas(region: string, gpuType: GpuType, replicas: number): Promise<void> {
    if (!GPU_TYPES.includes(gpuType) || !Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
      throw new RangeError(`Invalid desired replicas ${gpuType}=${replicas}`);
    }
    const name = deploymentName(this.options, region, gpuType);
    if (!name) {
      throw new KubernetesScaleError(
        `The Kubernetes scale driver of region ${this.options.homeRegion} does not scale region ${region}'s ` +
          `${gpuType} fleet: its Deployment pattern ${this.options.deploymentPattern} has no {region}`,
        0,
      );
    }
    const { api, mergePatch, namespace } = await this.connect();
    try {
      await api.patchNamespacedDeploymentScale(
        { name, namespace, body: { spec: { replicas } }, fieldManager: FIELD_MANAGER },
        mergePatch,
      );
    } catch (err) {
      throw this.failure('PATCH', namespace, name, err);
    }
  }

  private connect(): Promise<ApiClient> {
    if (this.client) return this.client;
    const client = (async (): Promise<ApiClient> => {
      const k8s = await import('@kubernetes/client-node');
      const kc = await this.kubeConfig();
      const timeoutMs = this.options.requestTimeoutMs;
      // Each call gets its own abort signal, so no call outlives the bound.
      const bounded: ObservableMiddleware = {
        pre: (context) => {
          context.setSignal(AbortSignal.timeout(timeoutMs));
          return new k8s.Observable(Promise.resolve(context));
        },
        post: (response) => new k8s.Observable(Promise.resolve(response)),
      };
      return {
        api: kc.makeApiClient(k8s.AppsV1Api),
        namespace: this.options.namespace || contextNamespace(kc),
        read: { middleware: [bounded], middlewareMergeStrategy: 'append' },
        // The generated client sends patches as JSON Patch unless told otherwise; ours is a merge patch.
        mergePatch: {
          middleware: [bounded, k8s.setHeaderMiddleware('Content-Type', k8s.PatchStrategy.MergePatch)],
          middlewareMergeStrategy: 'append',
        },
      };
    })().catch((err: unknown) => {
      this.client = undefined;
      throw err;
    });
    this.client = client;
    return client;
  }

  private failure(method: string, namespace: string, name: string, err: unknown): KubernetesScaleError {
    const what = `Kubernetes API ${method} deployments/${name}/scale in namespace ${namespace}`;
    const status = statusOf(err);
    if (status === undefined) {
      const timedOut = (err as Error | undefined)?.name === 'AbortError';
      const why = timedOut ? `no answer within ${this.options.requestTimeoutMs} ms` : String(err);
      return new KubernetesScaleError(`${what} failed: ${why}`, 0, { cause: err });
    }
    return new KubernetesScaleError(`${what} failed: HTTP ${status}: ${apiMessage(err)}`, status, { cause: err });
  }
}

function fleetScale(scale: V1Scale): FleetScale {
  return { desired: scale.spec?.replicas ?? 0, running: scale.status?.replicas ?? 0 };
}

/** HTTP status of the client library's ApiException; undefined for a call that got no answer. */
function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && code >= 100 && code < 600 ? code : undefined;
}

/** The Status object's reason and message the API server sent, else the body as text, else the client's summary. */
function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body !== 'string' || body.length === 0) {
    // The client sends no body with its 401 (ApiException's message is "HTTP-Code: ...\nMessage: Unauthorized\n...").
    return /\nMessage: (.*)/.exec((err as Error).message)?.[1] ?? 'no message';
  }
  try {
    const status = JSON.parse(body) as { message?: unknown; reason?: unknown };
    if (typeof status.message === 'string') {
      return typeof status.reason === 'string' ? `${status.reason}: ${status.message}` : status.message;
    }
  } catch {
    // not JSON: the body as it came
  }
  return body.slice(0, 500);
}
