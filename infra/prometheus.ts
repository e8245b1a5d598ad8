// Prometheus for the local stack: writes its configuration (one scrape job, `atelier`, whose targets come from a
// file the launcher rewrites whenever a process starts or stops, and Atelier's alerting rules), runs `prometheus`
// as a supervised child, and resolves once it is ready.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../runtime/logger';
import { portAcceptsConnections } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { repoRoot } from './repo-root';

/** Where Atelier's alerting rules live; every `*.yml` there except the promtool tests (`*.test.yml`) is loaded. */
export function defaultRulesDir(): string {
  return path.join(repoRoot(), 'infra', 'prometheus', 'rules');
}

/** The scrape job every Atelier process is a target of; alert expressions select on `job="atelier"`. */
export const SCRAPE_JOB = 'atelier';

export interface PrometheusTarget {
  /** `host:port` of the process's metrics endpoint. */
  readonly target: string;
  /**
   * Labels every series of the target gets. `process` names it the way the stack does (`gateway`, `control-worker`,
   * `gpu-worker[a10g]`); the alerts select on it. `__metrics_path__` overrides the default `/metrics`.
   */
  readonly labels: { readonly process: string } & Readonly<Record<string, string>>;
}

export interface PrometheusConfigOptions {
  /** The file-based service discovery file (`.json`, `.yml` or `.yaml`; see {@link writeTargetsFile}). */
  targetsFile: string;
  /** @default {@link defaultRulesDir} */
  rulesDir?: string;
  /** Scrape and rule-evaluation interval. @default 5 */
  scrapeIntervalSeconds?: number;
}

export interface PrometheusOptions extends PrometheusConfigOptions {
  /** Path to the prometheus binary (see `resolvePrometheus`). */
  binary: string;
  /** Holds `prometheus.yml` and the TSDB (`<dataDir>/tsdb`); created if missing. */
  dataDir: string;
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 9090 */
  port?: number;
  /** How long samples are kept. @default '7d' */
  retention?: string;
  log: Logger;
  /** Receives each line prometheus prints. @default lines go to `log.debug` */
  onOutput?: (line: string) => void;
  /** How long to wait for `/-/ready`, ms. @default 60 000 */
  readyTimeoutMs?: number;
}

export interface PrometheusHandle {
  /** Base URL of the web UI and HTTP API, e.g. `http://127.0.0.1:9090`. */
  readonly url: string;
  /** The configuration file it runs with. */
  readonly configFile: string;
  readonly process: ServiceProcess['process'];
  /** Resolves when the process exits (for whatever reason). */
  readonly exited: ServiceProcess['exited'];
  /** SIGTERM (Prometheus flushes its head block), then SIGKILL after 15 s. Safe to call twice. */
  stop(): Promise<void>;
}

/** Thrown when prometheus exits during start-up, or is not ready in time. */
export class PrometheusStartError extends Error {
  override readonly name = 'PrometheusStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const SD_EXTENSIONS = ['.json', '.yml', '.yaml'];
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/;

/**
 * Rule files to load: every `*.yml` / `*.yaml` in `rulesDir` except promtool test files (`*.test.yml`), which
 * live beside the rules they test but are not rule files. Listed by name rather than by glob for that reason.
 */
export async function ruleFiles(rulesDir: string = defaultRulesDir()): Promise<string[]> {
  const names = await fs.readdir(rulesDir);
  return names
    .filter((n) => /\.ya?ml$/.test(n) && !/\.test\.ya?ml$/.test(n))
    .sort()
    .map((n) => path.resolve(rulesDir, n));
}

/**
 * The text of `prometheus.yml`. JSON-quoted strings are valid YAML scalars, so paths need no YAML escaping of
 * their own. Rules are evaluated as often as targets are scraped, so a rule's `for:` is accurate to one interval.
 */
export async function prometheusConfig(opts: PrometheusConfigOptions): Promise<string> {
  const interval = `${opts.scrapeIntervalSeconds ?? 5}s`;
  const rules = await ruleFiles(opts.rulesDir);
  const q = (s: string): string => JSON.stringify(s);
  return [
    '# Written by infra/prometheus.ts at every start; edits are overwritten.',
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'rule_files:',
    ...(rules.length > 0 ? rules.map((r) => `  - ${q(r)}`) : ['  []']),
    'scrape_configs:',
    `  - job_name: ${q(SCRAPE_JOB)}`,
    // Processes come and go (workers restart, fleets are added): the launcher rewrites this file and Prometheus
    // picks it up through inotify; the refresh interval is only the fallback where inotify misses the rename.
    '    file_sd_configs:',
    `      - files: [${q(path.resolve(opts.targetsFile))}]`,
    '        refresh_interval: 30s',
    // Each process labels its own samples with its role and region (runtime/metrics.ts); the target's labels win
    // (`gpu-worker[a10g]` is more precise than `gpu-worker`), and the copies Prometheus keeps of the sample's own
    // values as exported_* are dropped, so a series has one `process` label, the one the alerts select on.
    '    metric_relabel_configs:',
    '      - action: labeldrop',
    '        regex: exported_(process|region)',
    '',
  ].join('\n');
}

/** Writes `<dataDir>/prometheus.yml` and returns its path. */
export async function writePrometheusConfig(dataDir: string, opts: PrometheusConfigOptions): Promise<string> {
  await fs.mkdir(dataDir, { recursive: true });
  const file = path.resolve(dataDir, 'prometheus.yml');
  await writeAtomically(file, await prometheusConfig(opts));
  return file;
}

/**
 * Replaces the service-discovery file with `targets` (JSON, one group per target). Written to a temporary file and
 * renamed over the old one, so Prometheus never reads half a file (it would drop every target until the next
 * change). Throws on a malformed target or label name, which Prometheus would otherwise only log.
 */
export async function writeTargetsFile(file: string, targets: readonly PrometheusTarget[]): Promise<void> {
  const groups = targets.map((t) => {
    if (!HOST_PORT.test(t.target)) throw new TypeError(`Invalid scrape target ${JSON.stringify(t.target)}: host:port`);
    for (const name of Object.keys(t.labels)) {
      if (!LABEL_NAME.test(name)) throw new TypeError(`Invalid label name ${JSON.stringify(name)} on ${t.target}`);
    }
    return { targets: [t.target], labels: { ...t.labels } };
  });
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeAtomically(file, `${JSON.stringify(groups, null, 2)}\n`);
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fs.writeFile(temp, text);
    await fs.rename(temp, file);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
}

/**
 * Writes the configuration (and an empty targets file when there is none yet), starts prometheus, and resolves
 * once `GET /-/ready` answers 200. Rejects with {@link PrometheusStartError}, including its last output, when it
 * exits early (a bad rule file, a taken port) or is not ready within `readyTimeoutMs`.
 */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 9090;
  const hostPort = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
  const url = `http://${hostPort}`;
  if (!SD_EXTENSIONS.includes(path.extname(opts.targetsFile))) {
    throw new TypeError(`targetsFile must end in ${SD_EXTENSIONS.join(', ')}: ${opts.targetsFile}`);
  }
  // Checked up front, as for Temporal: the readiness probe would otherwise take whatever listens there for ours.
  if (await portAcceptsConnections(host, port)) {
    throw new PrometheusStartError(`Cannot start Prometheus on ${hostPort}: something is already listening there.`);
  }
  const dataDir = path.resolve(opts.dataDir);
  const configFile = await writePrometheusConfig(dataDir, opts);
  await fs.stat(opts.targetsFile).catch(() => writeTargetsFile(opts.targetsFile, []));

  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(dataDir, 'tsdb')}`,
    `--storage.tsdb.retention.time=${opts.retention ?? '7d'}`,
    `--web.listen-address=${hostPort}`,
  ];
  const [command, ...commandArgs] = [...dieWithParentPrefix(), opts.binary, ...args] as [string, ...string[]];
  opts.log.debug({ binary: opts.binary, args }, 'starting prometheus');
  const server = spawnService({
    name: 'prometheus',
    command,
    args: commandArgs,
    onLine: opts.onOutput ?? ((line) => opts.log.debug({ prometheus: line }, 'prometheus output')),
    ownProcessGroup: true,
  });
  const stop = async (): Promise<void> => void (await server.stop({ graceMs: 15_000 }));
  try {
    await waitUntilReady(url, server, opts.readyTimeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  opts.log.info({ url, configFile, targetsFile: opts.targetsFile }, 'Prometheus is ready');
  return { url, configFile, process: server.process, exited: server.exited, stop };
}

async function waitUntilReady(url: string, server: ServiceProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new PrometheusStartError(
        `prometheus at ${url} exited during start-up (${exit.signal ?? `code ${exit.code}`}). Its last output:\n${server.outputTail()}`,
      );
    }
    try {
      const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (response.status === 200) return;
      last = `HTTP ${response.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await delay(200);
  }
  throw new PrometheusStartError(
    `prometheus at ${url} was not ready within ${timeoutMs} ms (last: ${last}). Its last output:\n${server.outputTail()}`,
  );
}
