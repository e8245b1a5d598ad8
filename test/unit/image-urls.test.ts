// Image URLs (gateway/image-urls.ts): signing and checking signed URLs (expiry, tampering, key rotation), the two
// access modes, the options that choose them, and the completed frame that carries the URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkSignedQuery,
  createImageAccess,
  parseUrlSigningKeys,
  signedQuery,
  UrlSigningConfigError,
  type UrlSigningKey,
} from '../../gateway/image-urls';
import { resolveGatewayOptions } from '../../gateway/options';
import { eventToFrame } from '../../gateway/frames';

const SECRET_1 = 'first-secret-0123456789abcdefghijklmnop';
const SECRET_2 = 'second-secret-0123456789abcdefghijklmno';
const KEYS = parseUrlSigningKeys(`k1:${SECRET_1},k2:${SECRET_2}`);
const KEY = 'images/alice/r-1/0-0123456789abcdef0123456789abcdef.png';
const NOW = Date.UTC(2025, 0, 1, 12);
const IN_AN_HOUR = NOW / 1000 + 3600;

function signed(key: string, expiresAt: number, signer: UrlSigningKey = KEYS[0] as UrlSigningKey): URLSearchParams {
  return new URLSearchParams(signedQuery(key, expiresAt, signer));
}

void test('ATELIER_IMAGE_URL_SECRETS is parsed into keys in order, and malformed values are refused without echoing secrets', () => {
  assert.deepEqual(
    KEYS.map((k) => [k.id, k.secret.toString()]),
    [
      ['k1', SECRET_1],
      ['k2', SECRET_2],
    ],
  );
  assert.equal(parseUrlSigningKeys(`a:${SECRET_1}:with:colons`)[0]?.secret.toString(), `${SECRET_1}:with:colons`);
  for (const [spec, pattern] of [
    [SECRET_1, /entry 1: expected id:secret/],
    [`bad id:${SECRET_1}`, /entry 1/],
    [`k1:${SECRET_1},k2:short-secret`, /key k2: the secret needs at least 32 characters/],
    [`k1:${SECRET_1},k1:${SECRET_2}`, /names key k1 twice/],
  ] as const) {
    assert.throws(
      () => parseUrlSigningKeys(spec),
      (err: unknown) => {
        assert.ok(err instanceof UrlSigningConfigError);
        assert.match(err.message, pattern);
        assert.ok(!err.message.includes(SECRET_1) && !err.message.includes('short-secret'), err.message);
        return true;
      },
    );
  }
});

void test('a signed URL is accepted until it expires, then refused with IMAGE_URL_EXPIRED', () => {
  const params = signed(KEY, IN_AN_HOUR);
  assert.deepEqual(checkSignedQuery(KEY, params, NOW, KEYS), { ok: true, expiresAt: IN_AN_HOUR });
  assert.deepEqual(checkSignedQuery(KEY, params, IN_AN_HOUR * 1000 - 1, KEYS), { ok: true, expiresAt: IN_AN_HOUR });
  assert.deepEqual(checkSignedQuery(KEY, params, IN_AN_HOUR * 1000, KEYS), { ok: false, code: 'IMAGE_URL_EXPIRED' });
});

void test('a tampered URL is refused with IMAGE_SIGNATURE_INVALID: another key, a later expiry, another signature', () => {
  const params = signed(KEY, IN_AN_HOUR);
  const sig = params.get('sig') ?? '';
  const invalid = { ok: false, code: 'IMAGE_SIGNATURE_INVALID' };
  const tampered = (changes: Record<string, string>): URLSearchParams =>
    new URLSearchParams({ ...Object.fromEntries(params), ...changes });

  // The same signature presented for another image of the same request.
  assert.deepEqual(checkSignedQuery(KEY.replace('/0-', '/1-'), params, NOW, KEYS), invalid);
  // A later expiry, even for an already expired URL: it is invalid, not expired and not valid.
  assert.deepEqual(checkSignedQuery(KEY, tampered({ exp: String(IN_AN_HOUR + 86_400) }), NOW, KEYS), invalid);
  const lastChar = sig.at(-1) === 'A' ? 'B' : 'A';
  for (const changes of [
    { sig: `${sig.slice(0, -1)}${lastChar}` },
    { sig: sig.slice(0, -1) },
    { sig: `${sig}=` },
    { sig: 'x'.repeat(sig.length) },
    { kid: 'k2' },
    { kid: 'unknown' },
    { exp: 'soon' },
    { exp: '-1' },
  ] as Record<string, string>[]) {
    assert.deepEqual(checkSignedQuery(KEY, tampered(changes), NOW, KEYS), invalid, JSON.stringify(changes));
  }
  const withoutExp = tampered({});
  withoutExp.delete('exp');
  assert.deepEqual(checkSignedQuery(KEY, withoutExp, NOW, KEYS), invalid);
});

void test('a URL without a signature is IMAGE_SIGNATURE_REQUIRED', () => {
  const required = { ok: false, code: 'IMAGE_SIGNATURE_REQUIRED' };
  assert.deepEqual(checkSignedQuery(KEY, new URLSearchParams(), NOW, KEYS), required);
  assert.deepEqual(
    checkSignedQuery(KEY, new URLSearchParams({ exp: String(IN_AN_HOUR), kid: 'k1' }), NOW, KEYS),
    required,
  );
  assert.deepEqual(checkSignedQuery(KEY, new URLSearchParams({ sig: '' }), NOW, KEYS), required);
});

void test('rotation: the first secret signs, every listed secret is accepted, a removed one no longer is', () => {
  const before = createImageAccess({
    imageAccess: 'signed',
    imageUrlSecrets: `old:${SECRET_2}`,
    imageUrlTtlMs: 3_600_000,
  });
  const oldUrl = new URL(before.url('https://img.example.com', KEY, NOW));
  assert.equal(oldUrl.searchParams.get('kid'), 'old');

  // Step 1 and 2: the new secret is added, then moved first; URLs signed with the old one keep working.
  const during = createImageAccess({
    imageAccess: 'signed',
    imageUrlSecrets: `new:${SECRET_1},old:${SECRET_2}`,
    imageUrlTtlMs: 3_600_000,
  });
  const newUrl = new URL(during.url('https://img.example.com', KEY, NOW));
  assert.equal(newUrl.searchParams.get('kid'), 'new');
  assert.deepEqual(during.check(KEY, oldUrl.searchParams, NOW), { ok: true, expiresAt: IN_AN_HOUR });
  assert.deepEqual(during.check(KEY, newUrl.searchParams, NOW), { ok: true, expiresAt: IN_AN_HOUR });

  // Step 3: the old secret is removed (after its URLs have expired anyway).
  const after = createImageAccess({
    imageAccess: 'signed',
    imageUrlSecrets: `new:${SECRET_1}`,
    imageUrlTtlMs: 3_600_000,
  });
  assert.deepEqual(after.check(KEY, oldUrl.searchParams, NOW), { ok: false, code: 'IMAGE_SIGNATURE_INVALID' });
  assert.equal(after.check(KEY, newUrl.searchParams, NOW).ok, true);
});

void test('signed access builds URLs that expire after the configured lifetime; capability access builds bare URLs', () => {
  const access = createImageAccess({ imageAccess: 'signed', imageUrlSecrets: `k1:${SECRET_1}`, imageUrlTtlMs: 90_000 });
  const url = new URL(access.url('http://127.0.0.1:8080', KEY, NOW));
  assert.equal(url.origin + url.pathname, `http://127.0.0.1:8080/v1/images/${KEY}`);
  assert.equal(url.searchParams.get('exp'), String(NOW / 1000 + 90));
  assert.equal(access.check(KEY, url.searchParams, NOW + 89_999).ok, true);
  assert.deepEqual(access.check(KEY, url.searchParams, NOW + 90_000), { ok: false, code: 'IMAGE_URL_EXPIRED' });

  const capability = createImageAccess({ imageAccess: 'capability', imageUrlSecrets: '', imageUrlTtlMs: 90_000 });
  assert.equal(capability.url('http://127.0.0.1:8080', KEY, NOW), `http://127.0.0.1:8080/v1/images/${KEY}`);
  assert.deepEqual(capability.check(KEY, new URLSearchParams('sig=whatever'), NOW), { ok: true });
  assert.throws(
    () => createImageAccess({ imageAccess: 'signed', imageUrlSecrets: '', imageUrlTtlMs: 90_000 }),
    /ATELIER_IMAGE_ACCESS=signed needs ATELIER_IMAGE_URL_SECRETS/,
  );
});

void test('the image access options are validated at start-up', () => {
  const defaults = resolveGatewayOptions({});
  assert.deepEqual(
    [defaults.imageAccess, defaults.imageUrlSecrets, defaults.imageUrlTtlMs],
    ['capability', '', 3_600_000],
  );
  const configured = resolveGatewayOptions({
    ATELIER_IMAGE_ACCESS: 'signed',
    ATELIER_IMAGE_URL_SECRETS: `k1:${SECRET_1}`,
    ATELIER_IMAGE_URL_TTL_MS: '600000',
  });
  assert.deepEqual([configured.imageAccess, configured.imageUrlTtlMs], ['signed', 600_000]);
  assert.throws(() => resolveGatewayOptions({ ATELIER_IMAGE_ACCESS: 'public' }), /ATELIER_IMAGE_ACCESS="public"/);
  assert.throws(() => resolveGatewayOptions({ ATELIER_IMAGE_ACCESS: 'signed' }), /needs ATELIER_IMAGE_URL_SECRETS/);
  assert.throws(() => resolveGatewayOptions({ ATELIER_IMAGE_URL_SECRETS: 'k1:short' }), /at least 32 characters/);
  assert.throws(() => resolveGatewayOptions({ ATELIER_IMAGE_URL_TTL_MS: '5' }), /ATELIER_IMAGE_URL_TTL_MS/);
  // Options handed in directly (tests, embedding) are checked the same way.
  assert.throws(() => resolveGatewayOptions({}, { imageAccess: 'signed' }), /needs ATELIER_IMAGE_URL_SECRETS/);
});

void test('a completed frame carries the URLs the access policy builds', () => {
  const access = createImageAccess({ imageAccess: 'signed', imageUrlSecrets: `k1:${SECRET_1}`, imageUrlTtlMs: 60_000 });
  const frame = eventToFrame(
    'r-1',
    { seq: 9, type: 'completed', images: [{ key: KEY, width: 64, height: 64, seed: 7 }] },
    (key) => access.url('https://img.example.com', key, NOW),
  );
  assert.equal(frame.type, 'completed');
  const image = frame.type === 'completed' ? frame.images[0] : undefined;
  assert.ok(image);
  const url = new URL(image.url);
  assert.equal(url.pathname, `/v1/images/${KEY}`);
  assert.deepEqual(access.check(KEY, url.searchParams, NOW), { ok: true, expiresAt: NOW / 1000 + 60 });
  assert.deepEqual([image.width, image.height, image.seed], [64, 64, 7]);
});
