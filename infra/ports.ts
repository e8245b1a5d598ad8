// Local TCP ports for the stack and the tests: a free port to bind a server to, and whether an address names
// this machine (only then may we start a server for it).
import net from 'node:net';

/**
 * A TCP port on `host` that nothing listens on right now. The OS picks it; another process could take it before
 * we bind, which for test servers started right after is rare enough to accept.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error(`Could not determine a free port on ${host}`));
      });
    });
  });
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]', '0.0.0.0']);

/** True when `host` (from a URL or `host:port` address) is this machine's loopback. */
export function isLocalHost(host: string): boolean {
  return LOCAL_HOSTS.has(host.toLowerCase()) || host.startsWith('127.');
}

/** Splits `host:port` (Temporal's address format; IPv6 in brackets) into its parts. */
export function parseHostPort(address: string, defaultPort: number): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(address.trim());
  if (!match?.[1]) throw new TypeError(`Invalid address ${JSON.stringify(address)}: expected host:port`);
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`Invalid port in address ${JSON.stringify(address)}`);
  }
  return { host: match[1], port };
}

/** True when something accepts TCP connections on host:port (within `timeoutMs`). */
export function portAcceptsConnections(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: host.replace(/^\[|\]$/g, ''), port });
    const finish = (accepted: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(accepted);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}
