// toxiproxy-server for the chaos suite: a TCP proxy put between a process and a server it talks to (a GPU worker
// and Temporal, or Redis), whose REST API then cuts that link the way a network partition does. Started on a free
// port and tied to our life like the other native servers (infra/processes.ts), and driven with fetch.
import type { Logger } from '../runtime/logger';
import { freePort } from './ports';
import { delay, dieWithParentPrefix, spawnService, type ServiceProcess } from './processes';
import { resolveToxiproxyServer } from './provision';

/** One proxy as the API reports it; `listen` is where clients connect instead of `upstream`. */
export interface ToxiproxyProxy {
  readonly name: string;
  /** `host:port` the proxy accepts connections on (the port the OS picked when created with port 0). */
  readonly listen: string;
  /** `host:port` of the real server. */
  readonly upstream: string;
  /** False while disabled: nothing listens, and every connection through it was closed. */
  readonly enabled: boolean;
}

/** A toxic (a fault on one direction of a proxy's connections); `attributes` depend on `type`. */
export interface Toxic {
  readonly name: string;
  readonly type: 'latency' | 'bandwidth' | 'slow_close' | 'timeout' | 'reset_peer' | 'slicer' | 'limit_data';
  /** `upstream`: client to server; `downstream`: server to client. */
  readonly stream: 'upstream' | 'downstream';
  /** Share of connections it applies to, 0 to 1. @default 1 */
  readonly toxicity?: number;
  readonly attributes: Record<string, number>;
}

/** The API refused a request, or did not answer; the message names the call and what toxiproxy said. */
export class ToxiproxyError extends Error {
  override readonly name = 'ToxiproxyError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The toxics that make a proxy a partition: every byte, either way, dropped while the connection stays open. */
const PARTITION_TOXICS: readonly Toxic[] = (['upstream', 'downstream'] as const).map((stream) => ({
  name: `partition-${stream}`,
  type: 'timeout',
  stream,
  // 0: the connection is never closed; data is dropped until the toxic goes.
  attributes: { timeout: 0 },
}));

function checkName(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new TypeError(`Invalid toxiproxy name ${JSON.stringify(name)}: expected 1 to 64 letters, digits or _.-`);
  }
  return name;
}

/** `host:port` with an explicit port (0 only where the OS may pick one). */
function checkAddress(what: string, address: string, portZeroAllowed: boolean): string {
  const match = /^(\[[^\]]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || port > 65535 || (port === 0 && !portZeroAllowed)) {
    throw new TypeError(`Invalid ${what} ${JSON.stringify(address)}: expected host:port, e.g. 127.0.0.1:7233`);
  }
  return address;
}

/** A client of one toxiproxy-server's REST API. */
export class ToxiproxyClient {
  constructor(readonly apiUrl: string) {}

  /**
   * Creates a proxy to `upstream` (`host:port`), listening on `listen` (default: a free loopback port, which the
   * returned `listen` names). It is enabled at once.
   */
  async createProxy(name: string, upstream: string, listen = '127.0.0.1:0'): Promise<ToxiproxyProxy> {
    const body = {
      name: checkName(name),
      upstream: checkAddress('upstream', upstream, false),
      listen: checkAddress('listen address', listen, true),
      enabled: true,
    };
    return (await this.request('POST', '/proxies', body)) as ToxiproxyProxy;
  }

  async proxy(name: string): Promise<ToxiproxyProxy> {
    return (await this.request('GET', `/proxies/${checkName(name)}`)) as ToxiproxyProxy;
  }

  /** Disabling stops the listener and closes every connection through the proxy; enabling listens again. */
  async setEnabled(name: string, enabled: boolean): Promise<ToxiproxyProxy> {
    return (await this.request('PATCH', `/proxies/${checkName(name)}`, { enabled })) as ToxiproxyProxy;
  }

  async deleteProxy(name: string): Promise<void> {
    await this.request('DELETE', `/proxies/${checkName(name)}`);
  }

  async addToxic(proxy: string, toxic: Toxic): Promise<void> {
    await this.request('POST', `/proxies/${checkName(proxy)}/toxics`, { ...toxic, name: checkName(toxic.name) });
  }

  /** Removes a toxic; one that is not there is no error, so a heal can be repeated. */
  async removeToxic(proxy: string, toxic: string): Promise<void> {
    try {
      await this.request('DELETE', `/proxies/${checkName(proxy)}/toxics/${checkName(toxic)}`);
    } catch (err) {
      if (!(err instanceof ToxiproxyError && err.status === 404)) throw err;
    }
  }

  /**
   * Partitions the proxy's link: connections stay open but every byte either way is dropped, and new connections
   * are accepted into the same void, so the client sees only silence, as across a real partition; it learns of it
   * from its own timeouts and keepalives, not from a refused connection.
   */
  async partition(name: string): Promise<void> {
    for (const toxic of PARTITION_TOXICS) await this.addToxic(name, toxic);
  }

  /**
   * Heals a partition. The connections that lived through it are closed first (disable): bytes were dropped
   * mid-stream, so resuming them would hand a client replies that belong to other requests, which no real TCP
   * connection does. Clients then reconnect through the re-enabled proxy.
   */
  async heal(name: string): Promise<void> {
    await this.setEnabled(name, false);
    for (const toxic of PARTITION_TOXICS) await this.removeToxic(name, toxic.name);
    await this.setEnabled(name, true);
  }

  /** Answers GET /version: the server's version string. */
  async version(): Promise<string> {
    const body = (await this.request('GET', '/version')) as { version?: unknown };
    return String(body.version);
  }

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const what = `toxiproxy ${method} ${path}`;
    let res: Response;
    try {
      res = await fetch(`${this.apiUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : err;
      throw new ToxiproxyError(`${what}: no answer from ${this.apiUrl} (${String(reason)})`);
    }
    const text = await res.text();
    if (!res.ok) {
      let reason = text.trim();
      try {
        reason = String((JSON.parse(text) as { error?: unknown }).error ?? reason);
      } catch {
        // Not JSON (a proxy in between, or a plain-text error): keep the text as it came.
      }
      throw new ToxiproxyError(`${what}: HTTP ${res.status}: ${reason}`, res.status);
    }
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  }
}

export interface ToxiproxyServer {
  /** Base URL of the REST API, e.g. `http://127.0.0.1:40123`. */
  readonly apiUrl: string;
  readonly client: ToxiproxyClient;
  readonly process: ServiceProcess;
  /** SIGTERM (SIGKILL after 5 s); every proxy goes with it. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartToxiproxyOptions {
  /** The toxiproxy-server binary. @default resolveToxiproxyServer() (built into the cache on first use) */
  binary?: string;
  log?: Logger;
  /** Receives each line the server prints (one per proxied connection, at info). @default `log.debug` */
  onOutput?: (line: string) => void;
  /** How long to wait for the API to answer, ms. @default 15 000 */
  readyTimeoutMs?: number;
}

/** Starts toxiproxy-server on a free loopback port and resolves once its API answers. */
export async function startToxiproxy(opts: StartToxiproxyOptions = {}): Promise<ToxiproxyServer> {
  const binary = opts.binary ?? (await resolveToxiproxyServer());
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const argv = [...dieWithParentPrefix(), binary, '-host', '127.0.0.1', '-port', String(port)];
  const server = spawnService({
    name: 'toxiproxy',
    command: argv[0] ?? binary,
    args: argv.slice(1),
    onLine: opts.onOutput ?? ((line) => opts.log?.debug({ toxiproxy: line }, 'toxiproxy-server output')),
    ownProcessGroup: true,
  });
  const client = new ToxiproxyClient(apiUrl);
  const stop = async (): Promise<void> => void (await server.stop({ graceMs: 5_000 }));
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (server.hasExited) {
      const exit = await server.exited;
      throw new ToxiproxyError(
        `toxiproxy-server on port ${port} exited during start-up (${exit.signal ?? `code ${exit.code}`}). ` +
          `Its last output:\n${server.outputTail()}`,
      );
    }
    const version = await client.version().catch(() => undefined);
    if (version !== undefined) {
      opts.log?.info({ apiUrl, version }, 'toxiproxy-server is ready');
      return { apiUrl, client, process: server, stop };
    }
    if (Date.now() > deadline) {
      await stop();
      throw new ToxiproxyError(
        `toxiproxy-server did not answer at ${apiUrl} in time. Its last output:\n${server.outputTail()}`,
      );
    }
    await delay(100);
  }
}
