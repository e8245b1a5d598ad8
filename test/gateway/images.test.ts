// GET /v1/images/<key> on a real gateway (real Redis, filesystem store): only final image keys are served (a
// request's manifest never is), capability and signed access with expiry, tampering and key rotation, streamed
// bodies, and failures that tell clients nothing internal (file paths, host names).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { finalImageKey, imageManifestKey } from '../../runtime/object-keys';
import { createHttpHandler, type ReadinessReport } from '../../gateway/http';
import { createImageAccess, parseUrlSigningKeys, signedQuery } from '../../gateway/image-urls';
import { FsObjectStore, type ObjectStore } from '../../runtime/object-store';
import { startTestGateway, type TestGateway } from './harness';

const SECRETS = 'k-new:new-secret-0123456789abcdefghijklmnop,k-old:old-secret-0123456789abcdefghijklmnop';
const SIGNED = { imageAccess: 'signed', imageUrlSecrets: SECRETS, imageUrlTtlMs: 600_000 } as const;

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** Whether the whole body arrived (false when the gateway cut the response short). */
  readonly complete: boolean;
}

/** A raw HTTP request; the path is sent exactly as given. */
function request(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => undefined);
      res.on('close', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          complete: res.complete,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

function errorCode(answer: Answer): string {
  return (JSON.parse(answer.body.toString()) as { error: string }).error;
}

/** An object store that records streamed reads, refuses whole-body reads, and fails on demand. */
class SpyStore implements ObjectStore {
  streamed = 0;
  /** What getStream does instead of reading: throw this error, or hand out a stream that fails midway. */
  failure: { throws: Error } | { breaksAfter: Buffer } | null = null;
  constructor(readonly inner: FsObjectStore) {}
  put: ObjectStore['put'] = (...args) => this.inner.put(...args);
  head: ObjectStore['head'] = (key) => this.inner.head(key);
  delete: ObjectStore['delete'] = (key) => this.inner.delete(key);
  get(): never {
    throw new Error('the gateway must stream images, not read them whole');
  }
  async getStream(key: string): ReturnType<ObjectStore['getStream']> {
    this.streamed++;
    const failure = this.failure;
    if (failure && 'throws' in failure) throw failure.throws;
    const opened = await this.inner.getStream(key);
    if (!opened || !failure) return opened;
    opened.body.destroy();
    const broken = new Readable({ read() {} });
    broken.push(failure.breaksAfter);
    setTimeout(() => broken.destroy(new Error("EIO: i/o error, read '/srv/atelier/objects/x'")), 50);
    return { body: broken, info: opened.info };
  }
}

void describe('image serving', () => {
  let dir: string;
  let store: SpyStore;
  let open: TestGateway;
  let signed: TestGateway;
  const png = Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), randomBytes(1000)]);
  const key = finalImageKey('alice', 'req-1', 'run-1', 0, 'a'.repeat(64));

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-images-'));
    store = new SpyStore(new FsObjectStore(dir));
    await store.put(key, png);
    // What the storage activity writes last: it lists the request's image keys.
    const manifest = Buffer.from(JSON.stringify({ images: [{ key }] }));
    await store.put(imageManifestKey('alice', 'req-1'), manifest, {}, 'application/json');
    open = await startTestGateway({}, { objectStore: store });
    signed = await startTestGateway(SIGNED, { objectStore: store });
  });
  after(async () => {
    await signed?.stop();
    await open?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The path and query of the URL a signed gateway would put in a completed frame at `nowMs`. */
  const signedUrl = (gw: TestGateway, k: string, nowMs = Date.now()): string => {
    const url = new URL(createImageAccess(SIGNED).url(gw.address.httpUrl, k, nowMs));
    return url.pathname + url.search;
  };

  void test('manifest not served: a request manifest is 404 like a missing image, in both modes', async () => {
    const manifestKey = imageManifestKey('alice', 'req-1');
    assert.ok(await store.head(manifestKey), 'the manifest is in the store');
    const missing = await request(open.address.httpUrl, '/v1/images/images/alice/req-1/1-0123456789abcdef.png');
    for (const [gw, path] of [
      [open, `/v1/images/${manifestKey}`],
      [signed, signedUrl(signed, manifestKey)],
    ] as const) {
      for (const method of ['GET', 'HEAD']) {
        const answer = await request(gw.address.httpUrl, path, {}, method);
        assert.equal(answer.status, 404, `${method} ${path}`);
        if (method === 'GET') assert.equal(errorCode(answer), 'NOT_FOUND');
      }
    }
    assert.equal(missing.status, 404);
    // Nothing else under images/ that is not a final image key either.
    await store.put('images/alice/req-1/notes.png', png);
    assert.equal((await request(open.address.httpUrl, '/v1/images/images/alice/req-1/notes.png')).status, 404);
  });

  void test('capability mode serves the PNG at its key with ETag, immutable caching, 304 and HEAD', async () => {
    const info = await store.head(key);
    assert.ok(info);
    const res = await request(open.address.httpUrl, `/v1/images/${key}`);
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(png));
    assert.equal(res.headers['content-type'], 'image/png');
    assert.equal(res.headers['content-length'], String(png.length));
    assert.equal(res.headers.etag, `"${info.sha256}"`);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const cached = await request(open.address.httpUrl, `/v1/images/${key}`, { 'If-None-Match': `"${info.sha256}"` });
    assert.deepEqual([cached.status, cached.body.length], [304, 0]);
    const head = await request(open.address.httpUrl, `/v1/images/${key}`, {}, 'HEAD');
    assert.deepEqual([head.status, head.headers['content-length'], head.body.length], [200, String(png.length), 0]);
    // Signature parameters mean nothing here: the key is the permission.
    assert.equal((await request(open.address.httpUrl, `/v1/images/${key}?sig=junk&exp=1`)).status, 200);
  });

  void test('a valid signed URL serves the PNG, cached privately for no longer than the URL lives', async () => {
    const res = await request(signed.address.httpUrl, signedUrl(signed, key));
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(png));
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(res.headers['cache-control'] ?? '')?.[1]);
    assert.ok(maxAge > 590 && maxAge <= 600, res.headers['cache-control']);
    const cached = await request(signed.address.httpUrl, signedUrl(signed, key), {
      'If-None-Match': res.headers.etag ?? '',
    });
    assert.equal(cached.status, 304);
    // Rotation: a URL signed with the second (older) secret is still accepted.
    const old = parseUrlSigningKeys(SECRETS)[1];
    assert.ok(old);
    const byOld = `/v1/images/${key}?${signedQuery(key, Math.floor(Date.now() / 1000) + 60, old)}`;
    assert.equal((await request(signed.address.httpUrl, byOld)).status, 200);
  });

  void test('signed URL expired or tampered → refused; no signature → 401; refusals come before the lookup', async () => {
    const refused = async (path: string, status: number, code: string): Promise<void> => {
      const answer = await request(signed.address.httpUrl, path);
      assert.deepEqual([answer.status, errorCode(answer)], [status, code], path);
      assert.equal(answer.headers['cache-control'], 'no-store');
    };
    await refused(`/v1/images/${key}`, 401, 'IMAGE_SIGNATURE_REQUIRED');
    await refused(signedUrl(signed, key, Date.now() - 601_000), 403, 'IMAGE_URL_EXPIRED');
    const valid = new URLSearchParams(signedUrl(signed, key).split('?')[1]);
    const sig = valid.get('sig') ?? '';
    const withParams = (k: string, changes: Record<string, string>): string =>
      `/v1/images/${k}?${new URLSearchParams({ ...Object.fromEntries(valid), ...changes }).toString()}`;
    await refused(
      withParams(key, { sig: `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}` }),
      403,
      'IMAGE_SIGNATURE_INVALID',
    );
    await refused(withParams(key, { exp: String(Number(valid.get('exp')) + 3600) }), 403, 'IMAGE_SIGNATURE_INVALID');
    await refused(withParams(key, { kid: 'k-gone' }), 403, 'IMAGE_SIGNATURE_INVALID');
    // Alice's valid signature presented for another image: refused, whether or not that image exists.
    const other = finalImageKey('bob', 'req-9', 'run-9', 0, 'b'.repeat(64));
    await refused(withParams(other, {}), 403, 'IMAGE_SIGNATURE_INVALID');
    await store.put(other, png);
    await refused(withParams(other, {}), 403, 'IMAGE_SIGNATURE_INVALID');
    await refused(`/v1/images/${other}`, 401, 'IMAGE_SIGNATURE_REQUIRED');
    // The capability URL of the same image, which the open gateway serves.
    assert.equal((await request(open.address.httpUrl, `/v1/images/${other}`)).status, 200);
  });

  void test('bodies are streamed from the store: a large image is served whole, through getStream', async () => {
    const large = randomBytes(12 * 1024 * 1024 + 5);
    const largeKey = finalImageKey('alice', 'req-large', 'run-1', 0, 'c'.repeat(64));
    await store.put(largeKey, large);
    const before = store.streamed;
    const res = await request(open.address.httpUrl, `/v1/images/${largeKey}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(large.length));
    assert.ok(res.complete && res.body.equals(large), 'every byte, in order');
    // SpyStore.get throws: a 200 means the body came from the stream.
    assert.equal(store.streamed, before + 1);
  });
});

void describe('client-visible failures carry no internal paths or host names', () => {
  let dir: string;
  let store: SpyStore;
  let gw: TestGateway;
  const key = finalImageKey('alice', 'req-f', 'run-1', 0, 'd'.repeat(64));
  const body = randomBytes(256 * 1024);

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-images-'));
    store = new SpyStore(new FsObjectStore(dir));
    await store.put(key, body);
    gw = await startTestGateway({}, { objectStore: store });
  });
  after(async () => {
    store.failure = null;
    await gw?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void test('a store error before the response is a plain 500 INTERNAL', async () => {
    const internal = `EACCES: permission denied, open '${dir}/${key}' on storage-7.internal`;
    store.failure = { throws: Object.assign(new Error(internal), { code: 'EACCES' }) };
    const answer = await request(gw.address.httpUrl, `/v1/images/${key}`);
    assert.equal(answer.status, 500);
    assert.deepEqual(JSON.parse(answer.body.toString()), { error: 'INTERNAL', message: 'Internal error' });
    store.failure = null;
  });

  void test('a store error mid-body cuts the response short, and the gateway keeps serving', async () => {
    store.failure = { breaksAfter: body.subarray(0, 1000) };
    const broken = await request(gw.address.httpUrl, `/v1/images/${key}`);
    assert.equal(broken.status, 200);
    assert.equal(broken.complete, false, 'the client can tell the body is incomplete');
    assert.ok(broken.body.length < body.length);
    assert.ok(!broken.body.toString('latin1').includes('/srv/atelier'), 'no error text in the body');
    store.failure = null;
    const whole = await request(gw.address.httpUrl, `/v1/images/${key}`);
    assert.ok(whole.complete && whole.body.equals(body));
  });

  void test('/readyz says which dependency fails, not its address; the details go to the log', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const server = http.createServer(
      createHttpHandler({
        objectStore: store,
        images: createImageAccess({ imageAccess: 'capability', imageUrlSecrets: '', imageUrlTtlMs: 60_000 }),
        metrics: { contentType: 'text/plain', render: () => Promise.resolve('') },
        log,
        readiness: () =>
          Promise.resolve({
            ready: false,
            checks: {
              redis: { ok: false, error: 'connect ECONNREFUSED 10.20.30.40:6379' },
              temporal: { ok: false, error: '14 UNAVAILABLE: connect ECONNREFUSED temporal-0.prod.internal:7233' },
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (let probe = 0; probe < 3; probe++) {
        const answer = await request(base, '/readyz');
        assert.equal(answer.status, 503);
        const report = JSON.parse(answer.body.toString()) as ReadinessReport;
        assert.deepEqual([report.ready, report.checks.redis.ok, report.checks.temporal.ok], [false, false, false]);
        for (const internal of ['10.20.30.40', '6379', 'prod.internal', 'ECONNREFUSED']) {
          assert.ok(!answer.body.toString().includes(internal), `${internal} in ${answer.body.toString()}`);
        }
      }
      // Logged once for the three probes, with the details operators need.
      assert.equal(lines.length, 1, lines.join(''));
      assert.match(lines[0] ?? '', /10\.20\.30\.40:6379/);
      assert.match(lines[0] ?? '', /temporal-0\.prod\.internal:7233/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
