// A real Temporal cluster for `npm run stack:cluster` and its test: temporal-server built from go.temporal.io/server
// (not the CLI's dev server) with every service in one process, persisting to a private PostgreSQL with SQL
// visibility, and Atelier's namespace and custom search attributes registered. Same release and dynamic config as
// the dev server (config/temporal-server/), so what differs is storage and topology.
import { Connection, isGrpcServiceError } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes';
import type { Logger } from '../runtime/logger';
import { startPostgres, type PostgresHandle } from './postgres';
import { freePort, portAcceptsConnections } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { errorMessage } from './provision-common';
import {
  DATABASE,
  resolveTemporalServer,
  setupTemporalSchema,
  VISIBILITY_DATABASE,
  type TemporalServerBinaries,
} from './provision-temporal-server';
import { repoRoot } from './repo-root';
import { registerSearchAttributes, TemporalStartError } from './temporal';

export interface TemporalServerOptions {
  /** The PostgreSQL to persist to; its `temporal` and `temporal_visibility` databases are created when missing. */
  postgres: PostgresHandle;
  /** Folder of the generated config (`config/atelier.yaml`); created if missing. */
  dataDir: string;
  /** Frontend gRPC port on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** Port of the server's Prometheus `/metrics`; 0 picks a free one. @default 0 */
  metricsPort?: number;
  /** Namespace registered at start (and used by the readiness probe). @default 'default' */
  namespace?: string;
  /** How long closed workflows stay visible, ms. @default 3 days */
  retentionMs?: number;
  /** History shards: fixed when the database is first set up. @default 4 */
  numHistoryShards?: number;
  /** The server's own log level. @default 'warn' */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  log: Logger;
  /** Receives each line the server prints (JSON). @default lines go to `log.info` */
  onOutput?: (line: string) => void;
  /** How long to wait for the namespace and search attributes to answer, ms. @default 120 000 */
  readyTimeoutMs?: number;
  /** Binaries to run. @default resolveTemporalServer() (which may build them: minutes) */
  binaries?: TemporalServerBinaries;
}

export interface TemporalClusterServer {
  /** Frontend address for clients and workers, `host:port`. */
  readonly address: string;
  readonly namespace: string;
  readonly metricsUrl: string;
  /** The generated static config. */
  readonly configFile: string;
  readonly process: ServiceProcess['process'];
  readonly exited: ServiceProcess['exited'];
  /** SIGTERM (services leave the ring, connections drain), SIGKILL after 30 s. Safe to call twice. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const CONFIG_ENV = 'atelier';
/** gRPC ALREADY_EXISTS: RegisterNamespace of a namespace from an earlier run. */
const GRPC_ALREADY_EXISTS = 6;

/** Fills `${name}` in `template`; a name without a value is an error rather than an empty setting. */
export function renderTemplate(template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(/\$\{(\w+)\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new TypeError(`No value for \${${name}} in the Temporal server config template`);
    return String(value);
  });
}

/**
 * A free port for a service's ringpop listener. The SQL schema stores it in a SMALLINT column
 * (cluster_membership.rpc_port), so it must be below 32768, where Linux hands out no ephemeral ports: a free one
 * is searched for at random in [20000, 32767].
 */
async function freeMembershipPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    if (await canListen(port)) return port;
  }
  throw new TemporalStartError('No free port between 20000 and 32767 for Temporal membership');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Writes `<dataDir>/config/atelier.yaml` from config/temporal-server/server.yaml with fresh ports. */
async function writeServerConfig(
  opts: TemporalServerOptions,
  ports: { frontend: number; metrics: number },
): Promise<string> {
  const templates = path.join(repoRoot(), 'config', 'temporal-server');
  const values: Record<string, string | number> = {
    host: HOST,
    logLevel: opts.logLevel ?? 'warn',
    numHistoryShards: opts.numHistoryShards ?? 4,
    database: DATABASE,
    visibilityDatabase: VISIBILITY_DATABASE,
    postgresAddress: `${opts.postgres.host}:${opts.postgres.port}`,
    postgresUser: opts.postgres.user,
    metricsPort: ports.metrics,
    frontendPort: ports.frontend,
    dynamicConfigFile: path.join(templates, 'dynamic-config.yaml'),
  };
  // Membership and internal gRPC ports change on each start: peers find each other through the database.
  for (const service of ['frontend', 'history', 'matching', 'worker']) {
    if (service !== 'frontend') values[`${service}Port`] = await freePort();
    values[`${service}MembershipPort`] = await freeMembershipPort();
  }
  values.frontendHttpPort = await freePort();
  const rendered = renderTemplate(await fs.readFile(path.join(templates, 'server.yaml'), 'utf8'), values);
  const configFile = path.join(path.resolve(opts.dataDir), 'config', `${CONFIG_ENV}.yaml`);
  await fs.mkdir(path.dirname(configFile), { recursive: true });
  await fs.writeFile(configFile, rendered);
  return configFile;
}

/**
 * Sets up the schema, starts temporal-server with every service, and resolves once the frontend serves
 * `namespace` with Atelier's search attributes queryable through SQL visibility. Rejects with
 * {@link TemporalStartError} (with the server's last output) when it exits or stays unready past `readyTimeoutMs`.
 */
export async function startTemporalServer(opts: TemporalServerOptions): Promise<TemporalClusterServer> {
  const binaries = opts.binaries ?? (await resolveTemporalServer({ log: (line) => opts.log.info(line) }));
  const namespace = opts.namespace ?? 'default';
  const ports = { frontend: opts.port || (await freePort()), metrics: opts.metricsPort || (await freePort()) };
  const address = `${HOST}:${ports.frontend}`;
  if (await portAcceptsConnections(HOST, ports.frontend)) {
    throw new TemporalStartError(`Cannot start temporal-server on ${address}: something already listens there.`);
  }
  await setupTemporalSchema(opts.postgres, binaries.sqlTool, opts.log);
  // The hosts of an earlier run stay in the membership table until they expire, and ringpop spends its whole join
  // timeout (30 s and more) trying to reach them. This process is the cluster's only one, so none of them is alive.
  await opts.postgres.query('DELETE FROM cluster_membership', DATABASE);
  const configFile = await writeServerConfig(opts, ports);
  const root = path.dirname(path.dirname(configFile));
  const args = ['--root', root, '--config', 'config', '--env', CONFIG_ENV, '--allow-no-auth', 'start'];
  const [command, ...commandArgs] = [...dieWithParentPrefix(), binaries.server, ...args] as [string, ...string[]];
  const onOutput = opts.onOutput ?? ((line: string) => opts.log.info({ temporal: line }, 'temporal-server output'));
  let stopping = false;
  const server = spawnService({
    name: 'temporal-server',
    command,
    args: commandArgs,
    // While stopping, the internal workers log every poll the shutdown cuts off: expected, so not shown.
    onLine: (line) => (stopping ? opts.log.debug({ temporal: line }, 'temporal-server output') : onOutput(line)),
    ownProcessGroup: true,
  });
  const stop = async (): Promise<void> => {
    stopping = true;
    await server.stop({ graceMs: 30_000 });
  };
  const ready = { address, namespace, retentionMs: opts.retentionMs ?? 3 * 24 * 3600_000 };
  try {
    await waitUntilServing(ready, server, opts.readyTimeoutMs ?? 120_000);
  } catch (err) {
    await stop();
    throw err;
  }
  opts.log.info({ address, namespace, configFile }, 'Temporal server is ready');
  const metricsUrl = `http://${HOST}:${ports.metrics}/metrics`;
  return { address, namespace, metricsUrl, configFile, process: server.process, exited: server.exited, stop };
}

/**
 * Registers the namespace and search attributes, retrying until the frontend answers, then waits until every
 * service answers (probeServices): only then can a workflow that sets the attributes start and run.
 */
async function waitUntilServing(
  target: { address: string; namespace: string; retentionMs: number },
  server: ServiceProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new TemporalStartError(
        `temporal-server for ${target.address} exited during start-up (${exit.signal ?? `code ${exit.code}`}). Its last output:\n${server.outputTail()}`,
      );
    }
    try {
      await registerNamespace(target.address, target.namespace, target.retentionMs);
      await registerSearchAttributes(target.address, target.namespace);
      await probeServices(target.address, target.namespace);
      return;
    } catch (err) {
      lastError = err;
      await delay(500);
    }
  }
  throw new TemporalStartError(
    `temporal-server at ${target.address} was not serving namespace ${target.namespace} within ${timeoutMs} ms ` +
      `(last error: ${errorMessage(lastError)}). Its last output:\n${server.outputTail()}`,
    { cause: lastError },
  );
}

async function withConnection<T>(address: string, fn: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    return await connection.withDeadline(Date.now() + 10_000, () => fn(connection));
  } finally {
    await connection.close();
  }
}

/** RegisterNamespace, where a namespace left by an earlier run counts as done. */
function registerNamespace(address: string, namespace: string, retentionMs: number): Promise<void> {
  return withConnection(address, async (connection) => {
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        description: 'Atelier image generation',
        workflowExecutionRetentionPeriod: msToTs(retentionMs),
      });
    } catch (err) {
      if (!(isGrpcServiceError(err) && err.code === GRPC_ALREADY_EXISTS)) throw err;
    }
  });
}

/** gRPC NOT_FOUND: what history answers for a workflow that does not exist. */
const GRPC_NOT_FOUND = 5;

/**
 * Fails until every service answers for `namespace`: a visibility count by every custom search attribute (the
 * frontend knows the namespace and each attribute), a task queue description (matching), and a workflow lookup
 * that history answers with NotFound. After a restart the frontend answers before history and matching have
 * joined the ring ("Not enough hosts to serve the request").
 */
async function probeServices(address: string, namespace: string): Promise<void> {
  const query = SEARCH_ATTRIBUTES.map((key) => `${key.name} = ${key.type === 'BOOL' ? 'true' : '"probe"'}`).join(
    ' AND ',
  );
  await withConnection(address, async ({ workflowService }) => {
    await workflowService.countWorkflowExecutions({ namespace, query });
    await workflowService.describeTaskQueue({ namespace, taskQueue: { name: 'atelier-readiness-probe' } });
    try {
      await workflowService.describeWorkflowExecution({
        namespace,
        execution: { workflowId: 'atelier-readiness-probe' },
      });
    } catch (err) {
      if (!(isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND)) throw err;
    }
  });
}

export interface TemporalCluster {
  /** Frontend address, `127.0.0.1:<port>`. */
  readonly address: string;
  readonly namespace: string;
  /** The Temporal server's Prometheus endpoint. */
  readonly metricsUrl: string;
  readonly postgres: PostgresHandle;
  readonly server: TemporalClusterServer;
  /** Stops the server, then PostgreSQL. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * PostgreSQL in `<dataDir>/postgres` and temporal-server (config in `<dataDir>/temporal`), started in that order;
 * a second call on the same dataDir keeps every workflow. Options other than dataDir go to startTemporalServer.
 */
export async function startTemporalCluster(
  opts: Omit<TemporalServerOptions, 'postgres'> & { postgresPort?: number },
): Promise<TemporalCluster> {
  const dataDir = path.resolve(opts.dataDir);
  const postgres = await startPostgres({
    dataDir: path.join(dataDir, 'postgres'),
    port: opts.postgresPort,
    log: opts.log,
  });
  let server: TemporalClusterServer;
  try {
    server = await startTemporalServer({ ...opts, postgres, dataDir: path.join(dataDir, 'temporal') });
  } catch (err) {
    await postgres.stop();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    address: server.address,
    namespace: server.namespace,
    metricsUrl: server.metricsUrl,
    postgres,
    server,
    stop: () =>
      (stopped ??= (async () => {
        await server.stop();
        await postgres.stop();
      })()),
  };
}
