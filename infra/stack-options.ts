// Options of the local-stack launcher (`npm start`, and `startStack()` in end-to-end tests): the settings every
// process shares (runtime/shared-options.ts), which the launcher hands to each process it starts, and its own.
import { assertRegion, GPU_TYPES, isGpuType, type GpuType } from '../core/gpu';
import { parse, type OptionTable } from '../runtime/options';
import { SHARED_OPTION_TABLE, type SharedOptions } from '../runtime/shared-options';

export interface StackOptions extends SharedOptions {
  /** Directory for Temporal's SQLite file, Redis's append-only file, model copies and (by default) images. */
  dataDir: string;
  /** Port of the Temporal Web UI of the dev server we start; 0 runs it headless. */
  temporalUiPort: number;
  /** Port of the Temporal dev server's Prometheus endpoint; 0 picks a free one. */
  temporalMetricsPort: number;
  gatewayHost: string;
  gatewayPort: number;
  /** One GPU worker process is started per type (per region, of those the region runs). */
  gpuTypes: GpuType[];
  /**
   * Regions to run, each with its control worker, GPU fleets and gateway (infra/stack-regions.ts); the first is home.
   * Empty: ATELIER_REGION alone, whatever the region catalogue says.
   */
  regions: string[];
  /** Port of Prometheus's UI and API; 0 runs the stack without Prometheus. */
  prometheusPort: number;
  /** How long start-up may take before it fails, ms. */
  readyTimeoutMs: number;
  /** How long workers get to drain in-flight requests on shutdown before SIGKILL, ms. */
  shutdownTimeoutMs: number;
  /**
   * Run each region's autoscaler (in its control worker) and start and drain GPU worker processes to match it
   * (infra/stack-autoscale.ts).
   */
  autoscaler: boolean;
  /** Most GPU worker processes per fleet the local autoscaling runs. */
  autoscaleLocalMax: number;
}

const parseGpuTypes = (raw: string, env: string): GpuType[] => {
  const types = parse.list(raw);
  for (const t of types) {
    if (!isGpuType(t))
      throw new TypeError(`${env}: unknown GPU type ${JSON.stringify(t)}; known: ${GPU_TYPES.join(', ')}`);
  }
  if (types.length === 0) throw new TypeError(`${env}: at least one GPU type is needed`);
  return [...new Set(types)] as GpuType[];
};

export const STACK_OPTIONS: OptionTable<StackOptions> = {
  ...SHARED_OPTION_TABLE,
  // The launcher keeps images with the rest of its data unless told otherwise.
  storageDir: {
    ...SHARED_OPTION_TABLE.storageDir,
    doc: 'Filesystem object store root (empty = <data dir>/objects)',
    default: '',
  },
  dataDir: {
    env: 'ATELIER_DATA_DIR',
    doc: 'Data directory (Temporal SQLite, Redis AOF, models, images)',
    default: '.atelier',
    parse: parse.string,
  },
  temporalUiPort: {
    env: 'TEMPORAL_UI_PORT',
    doc: 'Temporal Web UI port of the dev server (0 = headless)',
    default: 8233,
    parse: parse.int(0, 65535),
  },
  temporalMetricsPort: {
    env: 'TEMPORAL_METRICS_PORT',
    doc: 'Prometheus /metrics port of the Temporal dev server (0 = a free port, printed at start)',
    default: 0,
    parse: parse.int(0, 65535),
  },
  gatewayHost: {
    env: 'ATELIER_GATEWAY_HOST',
    doc: 'Interface the gateway listens on',
    default: '127.0.0.1',
    parse: parse.string,
  },
  gatewayPort: {
    env: 'ATELIER_GATEWAY_PORT',
    doc: 'Gateway HTTP/WebSocket port',
    default: 8080,
    parse: parse.int(1, 65535),
  },
  gpuTypes: {
    env: 'ATELIER_GPU_TYPES',
    doc: `GPU worker fleets to run, comma-separated (${GPU_TYPES.join(', ')})`,
    default: ['a10g', 'a100', 'a100-80gb', 'h100'],
    parse: parseGpuTypes,
  },
  regions: {
    env: 'ATELIER_REGIONS',
    doc: 'Regions to run from the region catalogue, comma-separated, home first; each gets a control worker, its fleets and a gateway on the next port (empty = ATELIER_REGION alone)',
    default: [],
    parse: (raw) => [...new Set(parse.list(raw).map((r) => assertRegion(r)))],
  },
  prometheusPort: {
    env: 'PROMETHEUS_PORT',
    doc: 'Prometheus UI and API port, scraping every process (0 = no Prometheus)',
    default: 9090,
    parse: parse.int(0, 65535),
  },
  readyTimeoutMs: {
    env: 'ATELIER_READY_TIMEOUT_MS',
    doc: 'Start-up timeout, ms',
    default: 120_000,
    parse: parse.int(1_000, 3_600_000),
  },
  shutdownTimeoutMs: {
    env: 'ATELIER_SHUTDOWN_TIMEOUT_MS',
    doc: 'Time workers get to drain on shutdown before SIGKILL, ms',
    default: 30_000,
    parse: parse.int(0, 3_600_000),
  },
  autoscaler: {
    env: 'ATELIER_AUTOSCALER',
    doc: "Autoscale the GPU fleets: each region's control worker runs the autoscaler, the launcher starts and drains GPU worker processes to match (see Autoscaling)",
    default: false,
    parse: parse.bool,
  },
  autoscaleLocalMax: {
    env: 'ATELIER_AUTOSCALE_LOCAL_MAX',
    doc: 'Most GPU worker processes per fleet that local autoscaling runs',
    default: 3,
    parse: parse.int(1, 32),
  },
};

/** The API key the gateway accepts in development (`Authorization: Bearer dev-key` or `?api_key=dev-key`). */
export const DEV_API_KEY = 'dev-key';
