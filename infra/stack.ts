// The whole of Atelier on one machine: Temporal dev server, Redis, the control worker, one GPU worker per GPU type
// and the WebSocket gateway, as supervised child processes with ordered shutdown. `npm start` (infra/start.ts)
// runs it in the foreground; end-to-end tests use `startStack()` (infra/test-stack.ts) on free ports.
import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../runtime/logger';

export { StackStartError, type LaunchContext } from './stack-context';
import { freePort } from './ports';
import { randomBytes } from 'node:crypto';
import { delay, killChildrenOnExit } from './processes';
import { repoRoot } from './repo-root';
import { childEnvironment, ENTRY_POINTS, gatewayChild, workerChildren } from './stack-children';
import { startLocalFleetScaler } from './stack-autoscale';
import { planRegions, regionChildName, regionWorkerNames, type RegionPlan } from './stack-regions';
import { StackStartError, type LaunchContext } from './stack-context';
import { firstApiKey, recordStackFile, removeStackFile } from './stack-file';
import { workerHealthPorts } from './stack-metrics';
import { DEV_API_KEY, type StackOptions } from './stack-options';
import { superviseStackPrometheus } from './stack-prometheus';
import { StackRedis } from './stack-redis';
import { superviseTemporal } from './stack-temporal';
import type { Supervisor } from './supervisor';
import { gatewayUrls, launchedMetricsUrls, stackHandle, type Launched, type StackHandle } from './stack-handle';

export type { StackHandle, StackRegion } from './stack-handle';

function assertBuilt(root: string): void {
  const missing = Object.values(ENTRY_POINTS).filter((e) => !existsSync(path.join(root, e.script)));
  if (missing.length === 0) return;
  throw new StackStartError(
    `Missing entry points:\n${missing.map((e) => `  - ${e.script} (compiled from ${e.source})`).join('\n')}\n` +
      'Build with `npm run build` (`npm start` builds automatically); if the source file does not exist yet, that component is not written.',
  );
}

/** Each region's gateway port, a free one where it is 0. */
async function withFreeGatewayPorts(plans: RegionPlan[], host: string): Promise<RegionPlan[]> {
  const out: RegionPlan[] = [];
  for (const plan of plans) {
    let port = plan.gatewayPort;
    while (port === 0 || out.some((p) => p.gatewayPort === port)) port = await freePort(host);
    out.push({ ...plan, gatewayPort: port });
  }
  return out;
}

/** Undone in reverse order by the stack's stop(): Prometheus, gateway, workers, Redis, Temporal. */
class Cleanups {
  private readonly steps: (() => Promise<void>)[] = [];

  constructor(private readonly log: Logger) {}

  push(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      await step().catch((err: unknown) => this.log.error({ err }, 'error during shutdown'));
    }
  }
}

/**
 * Brings the stack up in dependency order (Temporal, Redis, workers, gateway, Prometheus) and resolves when the
 * gateway answers GET /readyz with 200. Anything started before a failure is stopped again before the error is
 * thrown.
 */
export async function launchStack(requested: StackOptions, ctx: LaunchContext): Promise<StackHandle> {
  const checkAborted = (): void => {
    if (ctx.abort?.aborted) throw new StackStartError('Start-up interrupted');
  };
  const root = repoRoot();
  assertBuilt(root);
  killChildrenOnExit();
  const dataDir = path.resolve(root, requested.dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  const cleanups = new Cleanups(ctx.log);
  try {
    const temporal = await superviseTemporal(requested, dataDir, ctx);
    if (temporal.supervisor) cleanups.push(() => (temporal.supervisor as Supervisor).stop());
    checkAborted();
    const redis = new StackRedis(requested, dataDir, ctx);
    await redis.start();
    cleanups.push(() => redis.stop());
    checkAborted();
    // Gateway port 0 = any free port, chosen only now: Temporal's dev server binds internal ports of its own as it
    // starts, and one of them once took a port picked for the gateway before it.
    const plans = await withFreeGatewayPorts(planRegions(requested), requested.gatewayHost);
    const home = plans[0] as RegionPlan;
    const options = { ...requested, region: home.region, gatewayPort: home.gatewayPort };
    const regions = plans.map((plan) => ({ plan, urls: gatewayUrls(options.gatewayHost, plan.gatewayPort) }));

    const baseEnv = childEnvironment(options, dataDir);
    const health = await workerHealthPorts(
      plans.flatMap(regionWorkerNames),
      Object.fromEntries(regions.map(({ plan, urls }) => [regionChildName(plan, 'gateway'), urls.http])),
      { ...process.env, ...ctx.extraEnv },
    );
    const workers = plans.flatMap((plan) => workerChildren(options, plan, plans, baseEnv, health.ports, ctx));
    cleanups.push(async () => void (await Promise.all(workers.map((w) => w.stop()))));
    await Promise.all(workers.map((w) => w.start()));
    const adminToken = { ...process.env, ...ctx.extraEnv }.ATELIER_ADMIN_TOKEN || randomBytes(24).toString('base64url');
    const gateways = plans.map((plan) => gatewayChild(plan, plans, adminToken, baseEnv, ctx));
    cleanups.push(async () => void (await Promise.all(gateways.map((g) => g.stop()))));
    await Promise.all(gateways.map((g) => g.start()));
    for (const { urls } of regions) await waitForReady(`${urls.http}/readyz`, options.readyTimeoutMs, ctx.abort);

    const children = new Map<string, Supervisor>([...workers, ...gateways].map((s) => [s.name, s]));
    if (options.autoscaler) {
      const scaler = startLocalFleetScaler(options, plans, baseEnv, children, ctx);
      cleanups.push(() => scaler.stop());
    }
    const launched: Launched = {
      temporal: temporal.supervisor,
      temporalUrls: temporal.urls,
      redis,
      children,
      apiKey: firstApiKey({ ...process.env, ...ctx.extraEnv }.ATELIER_API_KEYS) ?? DEV_API_KEY,
      adminToken,
      metricsUrls: health.metricsUrls,
      regions: regions.map(({ plan, urls }) => ({
        region: plan.region,
        gatewayHttpUrl: urls.http,
        gatewayWsUrl: urls.ws,
      })),
    };
    const prometheus = await superviseStackPrometheus(options, dataDir, launchedMetricsUrls(launched, temporal), ctx);
    if (prometheus) {
      cleanups.push(() => prometheus.supervisor.stop());
      children.set('prometheus', prometheus.supervisor);
    }
    let stopping: Promise<void> | undefined;
    const handle = stackHandle(
      options,
      dataDir,
      { ...launched, prometheusUrl: prometheus?.url },
      () => (stopping ??= cleanups.run()),
    );
    const services = [...children.values(), ...(temporal.supervisor ? [temporal.supervisor] : [])];
    await recordStackFile(handle, { ...baseEnv, ...ctx.extraEnv }, services);
    cleanups.push(() => removeStackFile(dataDir));
    return handle;
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}

async function waitForReady(url: string, timeoutMs: number, abort?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (abort?.aborted) throw new StackStartError('Start-up interrupted');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${(await res.text()).slice(0, 500)}`;
    } catch (err) {
      last = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    }
    await delay(250);
  }
  throw new StackStartError(`The gateway did not become ready at ${url} within ${timeoutMs} ms (last: ${last})`);
}
