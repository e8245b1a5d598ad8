// A private three-master Redis Cluster from the same redis-server binary as the single-node launcher
// (infra/redis-server.ts): for `npm run stack:cluster` and for the tests that prove Atelier's keys work on a Cluster.
// Each node keeps its cluster config (nodes.conf) and, by default, an append-only file in its own directory under
// `dir`; `dir/cluster.json` records the ports, so a second start on the same directory brings the same cluster back
// (same ports, same slots, same data) instead of creating a new one.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from '../runtime/logger';
import { redisClusterUrl } from '../runtime/redis';
import { freePort } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { resolveRedisServer } from './provision';
import { errorMessage, execFileAsync, findOnPath } from './provision-common';
import { RedisStartError, redisAnswers } from './redis-server';

/** Redis Cluster talks between nodes on this offset from each node's client port (the cluster bus). */
const BUS_PORT_OFFSET = 10_000;
const HOST = '127.0.0.1';

export interface RedisClusterOptions {
  /** Directory of the nodes' files, one sub-directory per node (created if missing). */
  readonly dir: string;
  readonly log?: Logger;
  /** Masters to start; Redis Cluster needs three at least. @default 3 */
  readonly masters?: number;
  /** Append-only file per node (fsync every second), as the single-node launcher keeps. @default true */
  readonly persistent?: boolean;
  /** Receives each line a node prints. @default lines go to `log.debug` */
  readonly onOutput?: (node: string, line: string) => void;
  /** How long to wait for the nodes to answer and the cluster to report `cluster_state:ok`, ms. @default 30 000 */
  readonly readyTimeoutMs?: number;
}

export interface RedisClusterNode {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`: this node alone (CLUSTER commands, tests). */
  readonly url: string;
  readonly process: ServiceProcess;
}

export interface RedisCluster {
  /** What Atelier's REDIS_URL takes: `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>`. */
  readonly url: string;
  /** The masters, in the order their slot ranges run (the first holds slot 0). */
  readonly nodes: readonly RedisClusterNode[];
  /** Stops every node (SIGTERM: each flushes its append-only file, then exits); the directory stays. */
  stop(): Promise<void>;
}

/** The record of a cluster's ports in `dir/cluster.json`. */
interface ClusterLayout {
  readonly ports: readonly number[];
}

/**
 * Starts the cluster under `opts.dir`: the nodes it recorded there before, or a new cluster on free ports, created
 * with `redis-cli --cluster create` (slots split evenly, no replicas). Resolves once every node reports
 * `cluster_state:ok`; on failure stops what it started and throws {@link RedisStartError}.
 */
export async function startRedisCluster(opts: RedisClusterOptions): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 3) throw new TypeError(`masters must be 3 or more, got ${masters}`);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  await fs.mkdir(opts.dir, { recursive: true });
  const existing = await readLayout(opts.dir, masters);
  const ports = existing?.ports ?? (await clusterPorts(masters));
  const binary = await resolveRedisServer();
  const started: RedisClusterNode[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((node) => node.process.stop({ graceMs: 10_000 })));
  };
  try {
    for (const port of ports) started.push(await startNode(binary, port, opts, deadline));
    if (!existing) {
      await createCluster(binary, ports, opts.log);
      await writeLayout(opts.dir, { ports });
    }
    await waitForClusterOk(ports, deadline);
  } catch (err) {
    await stop();
    if (err instanceof RedisStartError) throw err;
    throw new RedisStartError(`Redis Cluster under ${opts.dir} did not start: ${errorMessage(err)}`, { cause: err });
  }
  const url = redisClusterUrl(ports.map((port) => ({ host: HOST, port })));
  opts.log?.info({ url, dir: opts.dir, reused: existing !== undefined }, 'Redis Cluster is ready');
  return { url, nodes: started, stop };
}

async function readLayout(dir: string, masters: number): Promise<ClusterLayout | undefined> {
  let raw: string;
  try {
    raw = await fs.readFile(path.join(dir, 'cluster.json'), 'utf8');
  } catch {
    return undefined;
  }
  const layout = JSON.parse(raw) as ClusterLayout;
  if (layout.ports.length !== masters) {
    throw new RedisStartError(
      `${dir} holds a cluster of ${layout.ports.length} masters, not ${masters}; remove the directory to start afresh`,
    );
  }
  return layout;
}

async function writeLayout(dir: string, layout: ClusterLayout): Promise<void> {
  const temp = path.join(dir, `cluster.json.${process.pid}`);
  await fs.writeFile(temp, `${JSON.stringify(layout)}\n`);
  await fs.rename(temp, path.join(dir, 'cluster.json'));
}

/** True when nothing listens on `port` (we could bind it now). */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** `count` free client ports whose bus ports (port + 10 000) are free too, all distinct. */
async function clusterPorts(count: number): Promise<number[]> {
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt > 200) throw new RedisStartError('Found no free ports for the Redis Cluster nodes');
    const port = await freePort(HOST);
    const bus = port + BUS_PORT_OFFSET;
    if (bus > 65_535 || taken.has(port) || taken.has(bus) || !(await canBind(bus))) continue;
    taken.add(port).add(bus);
    ports.push(port);
  }
  return ports;
}

async function startNode(
  binary: string,
  port: number,
  opts: RedisClusterOptions,
  deadline: number,
): Promise<RedisClusterNode> {
  const dir = path.resolve(opts.dir, `node-${port}`);
  await fs.mkdir(dir, { recursive: true });
  const persistent = opts.persistent ?? true;
  const args = [
    ...['--port', String(port), '--bind', HOST, '--dir', dir, '--daemonize', 'no'],
    // As the single node: no RDB snapshots, the append-only file is the durability story.
    ...['--save', '', '--appendonly', persistent ? 'yes' : 'no', '--appendfsync', 'everysec'],
    ...['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'],
  ];
  const name = `redis-cluster:${port}`;
  const [command, ...commandArgs] = [...dieWithParentPrefix(), binary, ...args] as [string, ...string[]];
  opts.log?.debug({ binary, args }, 'starting a Redis Cluster node');
  const server = spawnService({
    name,
    command,
    args: commandArgs,
    onLine: (line) =>
      opts.onOutput ? opts.onOutput(name, line) : opts.log?.debug({ redis: line, port }, 'redis-server output'),
    ownProcessGroup: true,
  });
  const url = `redis://${HOST}:${port}`;
  while (Date.now() < deadline) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new RedisStartError(
        `Redis Cluster node on port ${port} exited during start-up (${exit.signal ?? `code ${exit.code}`}); are its port or bus port (${port + BUS_PORT_OFFSET}) taken? Its last output:\n${server.outputTail()}`,
      );
    }
    if (await redisAnswers(url, 500)) return { port, url, process: server };
    await delay(100);
  }
  await server.stop({ graceMs: 2_000 });
  throw new RedisStartError(`Redis Cluster node on port ${port} did not answer PING in time:\n${server.outputTail()}`);
}

/** redis-cli beside the redis-server we run (Debian's redis-tools puts both in /usr/bin), else the one on PATH. */
async function findRedisCli(redisServer: string): Promise<string> {
  const beside = path.join(path.dirname(redisServer), 'redis-cli');
  try {
    await fs.access(beside, fs.constants.X_OK);
    return beside;
  } catch {
    const onPath = await findOnPath('redis-cli');
    if (onPath) return onPath;
  }
  throw new RedisStartError(
    `redis-cli not found beside ${redisServer} or on PATH; it creates the cluster (Debian: apt-get install redis-tools)`,
  );
}

async function createCluster(redisServer: string, ports: readonly number[], log: Logger | undefined): Promise<void> {
  const cli = await findRedisCli(redisServer);
  const args = ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'];
  try {
    const { stdout } = await execFileAsync(cli, args, { timeout: 60_000 });
    log?.debug({ output: stdout.trim() }, 'redis-cli --cluster create');
  } catch (err) {
    const output = (err as { stdout?: string }).stdout ?? '';
    throw new RedisStartError(`redis-cli ${args.join(' ')} failed: ${errorMessage(err)}\n${output}`, { cause: err });
  }
}

/** Each node's `cluster_state` (`ok`, `fail`, or the error that kept us from asking). */
async function clusterStates(ports: readonly number[]): Promise<string[]> {
  return Promise.all(
    ports.map(async (port) => {
      const node = new Redis({
        host: HOST,
        port,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      try {
        await node.connect();
        const info = String(await node.call('CLUSTER', 'INFO'));
        return /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
      } catch (err) {
        return errorMessage(err);
      } finally {
        node.disconnect();
      }
    }),
  );
}

async function waitForClusterOk(ports: readonly number[], deadline: number): Promise<void> {
  let states: string[] = [];
  while (Date.now() < deadline) {
    states = await clusterStates(ports);
    if (states.every((s) => s === 'ok')) return;
    await delay(200);
  }
  const report = ports.map((p, i) => `${p}: ${states[i] ?? 'unknown'}`).join(', ');
  throw new RedisStartError(`Redis Cluster did not reach cluster_state:ok in time (${report})`);
}
