// toxiproxy-server, as the network_partition chaos experiment uses it: provisioned into the cache (built with
// `go install` on first use), started on a free port, and driving a real TCP link between a client and an echo
// server: a partition drops every byte without closing anything, a heal closes what lived through it and lets new
// connections through, and the API's refusals come back as clear errors.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ProvisionError, resolveToxiproxyServer, TOXIPROXY_VERSION } from '../../infra/provision';
import { startToxiproxy, ToxiproxyError, type ToxiproxyServer } from '../../infra/toxiproxy';

let binary: string;
let toxiproxy: ToxiproxyServer;
let echo: net.Server;
let echoAddress: string;
let scratch: string;

before(async () => {
  binary = await resolveToxiproxyServer();
  toxiproxy = await startToxiproxy({ binary });
  echo = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoAddress = `127.0.0.1:${(echo.address() as net.AddressInfo).port}`;
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-toxiproxy-test-'));
});

after(async () => {
  await toxiproxy?.stop();
  await new Promise((resolve) => echo?.close(resolve));
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

/** A client connection that records what it receives and whether the other end closed it. */
class Probe {
  received = '';
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (this.received += chunk));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static connect(address: string): Promise<Probe> {
    const [host, port] = address.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port: Number(port) });
      socket.once('connect', () => resolve(new Probe(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `text` and resolves with whether its echo came back within `ms`. */
  async echoes(text: string, ms = 2_000): Promise<boolean> {
    const before = this.received.length;
    this.socket.write(text);
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.received.slice(before).includes(text)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  end(): void {
    this.socket.destroy();
  }
}

describe('resolveToxiproxyServer', () => {
  test('the resolved binary is the pinned release', async () => {
    assert.equal(await toxiproxy.client.version(), TOXIPROXY_VERSION);
  });

  test('a TOXIPROXY_SERVER_PATH that is some other program is a clear error, not a fallback', async () => {
    const impostor = path.join(scratch, 'toxiproxy-server');
    await fs.writeFile(impostor, '#!/bin/sh\necho "something else"\n', { mode: 0o755 });
    await assert.rejects(
      resolveToxiproxyServer({ env: { TOXIPROXY_SERVER_PATH: impostor, PATH: path.dirname(binary) }, install: false }),
      (err: unknown) => {
        assert.ok(err instanceof ProvisionError);
        assert.ok(err.message.includes(`TOXIPROXY_SERVER_PATH=${impostor} is not a working toxiproxy-server`));
        return true;
      },
    );
  });

  test('nothing found and installing not allowed: the error says how to install it', async () => {
    await assert.rejects(
      resolveToxiproxyServer({
        env: { PATH: scratch, ATELIER_CACHE_DIR: path.join(scratch, 'cache') },
        install: false,
        // The impostor of the test above lies on that PATH: the note saying it is skipped is expected.
        log: () => undefined,
      }),
      (err: unknown) => {
        assert.ok(err instanceof ProvisionError);
        assert.ok(err.message.includes(`go install github.com/Shopify/toxiproxy/v2/cmd/server@v${TOXIPROXY_VERSION}`));
        assert.match(err.message, /TOXIPROXY_SERVER_PATH/);
        return true;
      },
    );
  });
});

describe('ToxiproxyClient', () => {
  test('a partition drops every byte without closing anything; a heal closes what lived through it', async () => {
    const { client } = toxiproxy;
    const proxy = await client.createProxy('echo-partition', echoAddress);
    assert.match(proxy.listen, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(proxy.listen, '127.0.0.1:0', 'the proxy reports the port it listens on');
    const before = await Probe.connect(proxy.listen);
    assert.equal(await before.echoes('ping 1'), true, 'the proxy passes data while healthy');

    await client.partition('echo-partition');
    assert.equal(await before.echoes('ping 2', 1_000), false, 'nothing crosses the partition');
    assert.equal(before.closed, false, 'a partition closes nothing: the client hears only silence');
    const during = await Probe.connect(proxy.listen);
    assert.equal(await during.echoes('ping 3', 1_000), false, 'a new connection is accepted into the same silence');

    await client.heal('echo-partition');
    assert.equal(await before.closedWithin(5_000), true, 'a connection that lived through the partition is closed');
    assert.equal(await during.closedWithin(5_000), true);
    const after = await Probe.connect(proxy.listen);
    assert.equal(await after.echoes('ping 4'), true, 'new connections work once healed');
    await client.heal('echo-partition');
    after.end();
    await client.deleteProxy('echo-partition');
  });

  test('a disabled proxy refuses connections, and works again once enabled', async () => {
    const { client } = toxiproxy;
    const proxy = await client.createProxy('echo-disable', echoAddress);
    assert.equal((await client.setEnabled('echo-disable', false)).enabled, false);
    await assert.rejects(Probe.connect(proxy.listen), /ECONNREFUSED/);
    const enabled = await client.setEnabled('echo-disable', true);
    assert.equal(enabled.listen, proxy.listen, 'it listens on the same address again');
    const probe = await Probe.connect(proxy.listen);
    assert.equal(await probe.echoes('again'), true);
    probe.end();
    await client.deleteProxy('echo-disable');
    await assert.rejects(
      client.proxy('echo-disable'),
      (err: unknown) => err instanceof ToxiproxyError && err.status === 404,
    );
  });

  test('bad input and refusals are clear errors', async () => {
    const { client } = toxiproxy;
    await assert.rejects(client.createProxy('bad name', echoAddress), /Invalid toxiproxy name "bad name"/);
    await assert.rejects(
      client.createProxy('no-port', '127.0.0.1'),
      /Invalid upstream "127\.0\.0\.1": expected host:port/,
    );
    await assert.rejects(client.createProxy('port-zero', '127.0.0.1:0'), /Invalid upstream/);
    await client.createProxy('echo-twice', echoAddress);
    await assert.rejects(client.createProxy('echo-twice', echoAddress), (err: unknown) => {
      assert.ok(err instanceof ToxiproxyError);
      assert.equal(err.status, 409);
      assert.match(err.message, /POST \/proxies: HTTP 409: proxy already exists/);
      return true;
    });
    await assert.rejects(client.partition('no-such-proxy'), /HTTP 404: proxy not found/);
    await client.deleteProxy('echo-twice');
  });
});

describe('startToxiproxy', () => {
  test('stop() ends the server, and its API no longer answers', async () => {
    const second = await startToxiproxy({ binary });
    assert.equal(await second.client.version(), TOXIPROXY_VERSION);
    await second.stop();
    assert.equal(second.process.hasExited, true);
    await assert.rejects(second.client.version(), /no answer from http:\/\/127\.0\.0\.1:\d+/);
  });
});
