// Temporal for the local stack and the tests: runs the Temporal CLI dev server (Temporal Server 1.29 with SQLite)
// configured the way Atelier needs it: our custom search attributes registered, and the priority- and fairness-aware
// task matcher switched on so a turbo request overtakes queued relax requests on a GPU task queue, and one user's
// backlog does not hold other users' requests of the same tier behind it. Tests that use
// `TestWorkflowEnvironment.createLocal` get the same configuration from `localTestServerConfig()`.
import { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import {
  encodeSearchAttributeIndexedValueType,
  type SearchAttributeKey,
} from '@temporalio/common/lib/search-attributes';
import type { LocalTestWorkflowEnvironmentOptions } from '@temporalio/testing';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes';
import type { Logger } from '../runtime/logger';
import { portAcceptsConnections } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { cachedTemporalCliPath } from './provision';

export interface TemporalDevServerOptions {
  /** Path to the Temporal CLI binary (see `resolveTemporalCli`). */
  cliPath: string;
  /**
   * Directory of the SQLite store `<dataDir>/temporal.db` (created if missing). Workflows, histories and timers
   * survive a server restart.
   */
  dataDir: string;
  /** Interface the frontend binds to. @default '127.0.0.1' */
  host?: string;
  /** Frontend gRPC port. @default 7233 */
  port?: number;
  /** Web UI port, or false to run headless. @default 8233 */
  uiPort?: number | false;
  /** Port of the server's Prometheus `/metrics` endpoint; 0 lets the server pick one. @default 0 */
  metricsPort?: number;
  /** Namespace created at start (in addition to `default`). @default 'default' */
  namespace?: string;
  log: Logger;
  /** Receives each line the server prints. @default lines go to `log.info` */
  onOutput?: (line: string) => void;
  /** How long to wait for the frontend to answer, ms. @default 60 000 */
  readyTimeoutMs?: number;
}

export interface TemporalServerHandle {
  /** Frontend address for clients and workers, `host:port`. */
  readonly address: string;
  readonly namespace: string;
  /** Web UI URL, or undefined when headless. */
  readonly uiUrl: string | undefined;
  /** The server's Prometheus endpoint, when a port was given. */
  readonly metricsUrl: string | undefined;
  /** The SQLite file this server persists to. */
  readonly dbFile: string;
  readonly process: ServiceProcess['process'];
  /** Resolves when the server process exits (for whatever reason). */
  readonly exited: ServiceProcess['exited'];
  /** SIGTERM, then SIGKILL after 15 s. Resolves once the process is gone; safe to call twice. */
  stop(): Promise<void>;
}

/** Thrown when the dev server exits during start-up or its frontend does not answer in time. */
export class TemporalStartError extends Error {
  override readonly name = 'TemporalStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Dynamic config of every Temporal we run locally.
 *
 * - `matching.useNewMatcher`: task-queue priority (`priority.priorityKey`, how tiers are ordered) is only honoured by
 *   the priority-enabled matcher, which Temporal Server 1.29 ships switched off (the dev server does not turn it on).
 * - `matching.enableFairness`: fairness (`priority.fairnessKey` / `fairnessWeight`, the user and their plan's
 *   weight on every GPU attempt, core/fairness.ts) is only honoured by the fair backlog, also off by default in 1.29.
 *   Within a priority level it gives each key's task a "pass" that advances by 1000/weight per task of that key, and
 *   dispatches the lowest pass first (stride scheduling): a user's first task lands at or near the head, the
 *   next ones interleave with other users' by weight, so 200 queued requests of one user no longer hold a request of
 *   another user behind them (test/workflow/fairness.test.ts). It implies the new matcher, except on sticky queues
 *   (one worker's cached workflows), which it leaves out; `matching.useNewMatcher` stays for those. Its
 *   companions keep their defaults: `matching.priorityLevels` (5, the tiers' range), `matching.fairnessCounter` (how
 *   passes are tracked per key: an exact map, a count-min sketch past many keys) and
 *   `matching.fairnessKeyRateLimitCacheSize` (per-key rate limits, which Atelier does not set). In 1.29 the fair
 *   backlog is another table (tasks_v2): a queue's tasks written before the switch are not read after it (1.30
 *   migrates them; a workflow task queued without fairness was not dispatched after a restart with it), so switch
 *   it with no request in flight in the local data dir (`.atelier/temporal.db`), or delete that.
 * - `matching.numTaskqueue{Read,Write}Partitions` = 1: priority and fairness are ordered within a partition; with the
 *   default 4 partitions a relax task in one partition can be dispatched before a turbo task in another. One
 *   partition makes the order exact on a single-host dev server; production clusters tune partitions for throughput.
 */
const DEV_DYNAMIC_CONFIG: Readonly<Record<string, boolean | number | string>> = {
  'matching.useNewMatcher': true,
  'matching.enableFairness': true,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

/**
 * SQLite pragmas of every Temporal we run locally. `journal_mode=wal`: in its default rollback-journal mode SQLite
 * syncs the whole journal on every commit and readers wait for writers; the dev server commits on every history
 * event, and a bare three-activity workflow at 10/s took 1.5 to 10 s against a file in that mode, 0.37 s in WAL
 * (as fast as an in-memory store). WAL stays durable across restarts: committed transactions are in the -wal file
 * until checkpointed into the database.
 */
const DEV_SQLITE_PRAGMAS: Readonly<Record<string, string>> = { journal_mode: 'wal' };

/**
 * Extra `start-dev` arguments shared by `startTemporalDevServer` and `TestWorkflowEnvironment.createLocal`: the
 * dynamic config and the SQLite pragmas.
 */
export function temporalDevServerExtraArgs(): string[] {
  return [
    ...Object.entries(DEV_DYNAMIC_CONFIG).flatMap(([key, value]) => [
      '--dynamic-config-value',
      `${key}=${JSON.stringify(value)}`,
    ]),
    ...Object.entries(DEV_SQLITE_PRAGMAS).flatMap(([pragma, value]) => ['--sqlite-pragma', `${pragma}=${value}`]),
  ];
}

/** Atelier's custom search attributes, in the form `DevServerConfig.searchAttributes` takes. */
export function searchAttributesForTestServer(): SearchAttributeKey<SearchAttributeType>[] {
  return [...SEARCH_ATTRIBUTES];
}

/** CLI spelling of each search attribute type (`temporal server start-dev --search-attribute Name=Keyword`). */
const CLI_SEARCH_ATTRIBUTE_TYPE: Readonly<Record<SearchAttributeType, string>> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

function searchAttributeArgs(): string[] {
  return SEARCH_ATTRIBUTES.flatMap((key) => [
    '--search-attribute',
    `${key.name}=${CLI_SEARCH_ATTRIBUTE_TYPE[key.type]}`,
  ]);
}

/**
 * `server` options for `TestWorkflowEnvironment.createLocal({ server: localTestServerConfig() })`: the same
 * binary, search attributes and dynamic config as the local stack. The binary comes from `cliPath`, else
 * TEMPORAL_CLI_PATH (set by `npm test`), else the provisioning cache.
 */
export function localTestServerConfig(cliPath?: string): NonNullable<LocalTestWorkflowEnvironmentOptions['server']> {
  const candidates = [cliPath, process.env.TEMPORAL_CLI_PATH, cachedTemporalCliPath()];
  const path = candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
  if (!path) {
    throw new Error(
      'No Temporal CLI for the test server: run the tests with `npm test` (it provisions one) or set TEMPORAL_CLI_PATH.',
    );
  }
  return {
    executable: { type: 'existing-path', path },
    searchAttributes: searchAttributesForTestServer(),
    extraArgs: temporalDevServerExtraArgs(),
  };
}

/**
 * Starts `temporal server start-dev` and resolves once its frontend answers for `namespace` with every Atelier
 * search attribute registered. Rejects with {@link TemporalStartError} (including the server's last output) when
 * the process exits early or the frontend stays silent past `readyTimeoutMs`.
 */
export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? 8233;
  const namespace = opts.namespace ?? 'default';
  const address = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
  // Checked up front: otherwise the readiness probe would reach whatever already listens there and take that for
  // our server, while ours exits with "address already in use".
  if (await portAcceptsConnections(host, port)) {
    throw new TemporalStartError(
      `Cannot start a Temporal dev server on ${address}: something is already listening on that port.`,
    );
  }
  await fs.mkdir(opts.dataDir, { recursive: true });
  const dbFile = path.resolve(opts.dataDir, 'temporal.db');

  const metricsPort = opts.metricsPort ?? 0;
  const args = startDevArgs({ host, port, dbFile, namespace, uiPort, metricsPort });
  const prefix = dieWithParentPrefix();
  const [command, ...commandArgs] = [...prefix, opts.cliPath, ...args] as [string, ...string[]];
  const onOutput = opts.onOutput ?? ((line: string) => opts.log.info({ temporal: line }, 'temporal dev server output'));
  // While stopping, the server's internal workers log every poll the shutdown cuts off: expected, so not shown.
  let stopping = false;
  const onLine = (line: string): void => {
    if (stopping) opts.log.debug({ temporal: line }, 'temporal dev server output while stopping');
    else onOutput(line);
  };
  opts.log.debug({ cliPath: opts.cliPath, args }, 'starting Temporal dev server');
  const server = spawnService({ name: 'temporal', command, args: commandArgs, onLine, ownProcessGroup: true });

  const stop = async (): Promise<void> => {
    stopping = true;
    await server.stop({ graceMs: 15_000 });
  };
  try {
    await waitForFrontend(address, dbFile, namespace, server, opts.readyTimeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  opts.log.info({ address, namespace, dbFile, uiPort }, 'Temporal dev server is ready');
  return {
    address,
    namespace,
    uiUrl: uiPort === false ? undefined : `http://${host}:${uiPort}`,
    metricsUrl: metricsPort === 0 ? undefined : `http://${host}:${metricsPort}/metrics`,
    dbFile,
    process: server.process,
    exited: server.exited,
    stop,
  };
}

/** Arguments of `temporal server start-dev` for one server. */
function startDevArgs(server: {
  host: string;
  port: number;
  dbFile: string;
  namespace: string;
  uiPort: number | false;
  metricsPort: number;
}): string[] {
  const { host, port, dbFile, namespace, uiPort, metricsPort } = server;
  return [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(port),
    '--db-filename',
    dbFile,
    ...(namespace === 'default' ? [] : ['--namespace', namespace]),
    ...(uiPort === false ? ['--headless'] : ['--ui-port', String(uiPort)]),
    ...(metricsPort === 0 ? [] : ['--metrics-port', String(metricsPort)]),
    '--log-level',
    'warn',
    ...searchAttributeArgs(),
    ...temporalDevServerExtraArgs(),
  ];
}

async function waitForFrontend(
  address: string,
  dbFile: string,
  namespace: string,
  server: ServiceProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new TemporalStartError(
        `Temporal dev server on ${address} with ${dbFile} exited during start-up (${exit.signal ?? `code ${exit.code}`}). Its last output:\n${server.outputTail()}`,
      );
    }
    try {
      await ensureSearchAttributes(address, namespace, 5_000);
      return;
    } catch (err) {
      lastError = err;
      await delay(250);
    }
  }
  throw new TemporalStartError(
    `Temporal dev server at ${address} did not answer within ${timeoutMs} ms (last error: ${lastError instanceof Error ? lastError.message : String(lastError)}). ` +
      `Its last output:\n${server.outputTail()}`,
    { cause: lastError },
  );
}

/**
 * Registers any Atelier search attribute that `namespace` lacks. The dev server registers `--search-attribute`s
 * only when it creates the namespace, so a data dir from before a new attribute was added needs this.
 */
async function ensureSearchAttributes(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: timeoutMs });
  try {
    const listed = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = SEARCH_ATTRIBUTES.filter((key) => listed.customAttributes[key.name] === undefined);
    if (missing.length === 0) return;
    const searchAttributes: Record<string, NonNullable<ReturnType<typeof encodeSearchAttributeIndexedValueType>>> = {};
    for (const key of missing) {
      const type = encodeSearchAttributeIndexedValueType(key.type);
      if (type !== undefined) searchAttributes[key.name] = type;
    }
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } finally {
    await connection.close();
  }
}

/**
 * True when a Temporal frontend answers at `address` (used by `npm start` to reuse a server the developer
 * already runs). Gives up after `timeoutMs`.
 */
export async function temporalAnswers(address: string, timeoutMs = 2_000): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: timeoutMs });
    await connection.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/**
 * Makes sure an existing server (one we did not start) has Atelier's search attributes, so workflows that set
 * them do not fail. Errors (e.g. no operator permission) are the caller's to report.
 */
export function registerSearchAttributes(address: string, namespace: string): Promise<void> {
  return ensureSearchAttributes(address, namespace, 10_000);
}
