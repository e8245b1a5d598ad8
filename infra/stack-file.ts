// `<data dir>/stack.json`: where a running local stack is and which processes it runs, written by the launcher
// when the stack is up and again whenever a child restarts, removed when it stops. Tools that attach to a stack
// started by `npm start` read it (bench:load measures the CPU time of each process by its pid).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { StackHandle } from './stack';
import type { Supervisor } from './supervisor';

export interface StackFile {
  readonly launcherPid: number;
  readonly writtenAt: string;
  readonly gateway: {
    readonly httpUrl: string;
    readonly wsUrl: string;
    readonly apiKey: string;
    /** Bearer token of the admin API (`npm run admin` reads it from here). */
    readonly adminToken: string;
  };
  readonly temporal: {
    readonly address: string;
    readonly namespace: string;
    readonly uiUrl: string | null;
    readonly metricsUrl: string | null;
  };
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly region: string;
  /** Every region the stack runs, home first, with its gateway. */
  readonly regions: readonly { readonly name: string; readonly httpUrl: string; readonly wsUrl: string }[];
  /**
   * Every child by name (`gateway`, `control-worker`, `gpu-worker[a10g]`, `temporal`, `redis`), with its pid and, for
   * each one that serves Prometheus metrics (all but Redis), the URL to scrape.
   */
  readonly processes: readonly { readonly name: string; readonly pid: number; readonly metricsUrl?: string }[];
  /** Settings of the children that benchmarks report beside their figures. */
  readonly env: Readonly<Record<string, string>>;
}

export function stackFilePath(dataDir: string): string {
  return path.join(dataDir, 'stack.json');
}

/** Written to a temporary name and renamed, so a reader never sees half a file. */
export async function writeStackFile(dataDir: string, file: StackFile): Promise<void> {
  const target = stackFilePath(dataDir);
  const temp = `${target}.${process.pid}.tmp`;
  await fs.writeFile(temp, `${JSON.stringify(file, null, 2)}\n`);
  await fs.rename(temp, target);
}

export async function removeStackFile(dataDir: string): Promise<void> {
  await fs.rm(stackFilePath(dataDir), { force: true });
}

/** The key of the first `key:userId` pair of ATELIER_API_KEYS, if any. */
export function firstApiKey(configured: string | undefined): string | undefined {
  const first = configured?.split(',')[0]?.trim() ?? '';
  const colon = first.lastIndexOf(':');
  return colon > 0 ? first.slice(0, colon) : undefined;
}

/** The ATELIER_* variables this launcher runs with (the children get them too). */
function atelierEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (key.startsWith('ATELIER_') && value) out[key] = value;
  return out;
}

/** Writes `<data dir>/stack.json` now and whenever a child restarts with a new pid. */
export async function recordStackFile(
  handle: StackHandle,
  env: Record<string, string>,
  services: Supervisor[],
): Promise<void> {
  const write = (): Promise<void> =>
    writeStackFile(handle.dataDir, {
      launcherPid: process.pid,
      writtenAt: new Date().toISOString(),
      gateway: {
        httpUrl: handle.gatewayHttpUrl,
        wsUrl: handle.gatewayWsUrl,
        apiKey: handle.apiKey,
        adminToken: handle.adminToken,
      },
      temporal: {
        address: handle.temporalAddress,
        namespace: handle.temporalNamespace,
        uiUrl: handle.temporalUiUrl ?? null,
        metricsUrl: handle.temporalMetricsUrl ?? null,
      },
      redisUrl: handle.redisUrl,
      redisPrefix: handle.options.redisPrefix,
      region: handle.options.region,
      regions: handle.regions.map((r) => ({ name: r.region, httpUrl: r.gatewayHttpUrl, wsUrl: r.gatewayWsUrl })),
      processes: handle.children().flatMap(({ name, pid }) => {
        const metricsUrl = handle.metricsUrls()[name];
        return pid === undefined ? [] : [{ name, pid, ...(metricsUrl ? { metricsUrl } : {}) }];
      }),
      env: { ...env, ...atelierEnv() },
    });
  for (const service of services) {
    service.onLaunched = () => void write().catch(() => undefined);
  }
  await write();
}
