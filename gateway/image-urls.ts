// Image URLs: what the gateway puts in `completed` frames and what it accepts at GET /v1/images/<key>. Two modes
// (ATELIER_IMAGE_ACCESS):
// - `capability` (default): the URL is the image key itself. Final keys carry a 128-bit token derived from the
//   workflow run id and the image bytes (runtime/object-keys.ts finalImageKey), so whoever holds the URL may
//   fetch the image and nobody can guess it from the user, the requestId or the prompt. Such a URL never expires:
//   anyone it is forwarded to keeps access.
// - `signed`: the URL also carries `exp` (Unix seconds), `kid` (which secret) and `sig`, the base64url
//   HMAC-SHA256 of the key and `exp` under that secret. Without a valid, unexpired signature the gateway refuses,
//   whatever the key. Several secrets are accepted at once (ATELIER_IMAGE_URL_SECRETS) and the first one signs, so
//   a secret is rotated without breaking URLs already handed out (README "Image access").
// Pure functions over keys, secrets and the clock, so every rule is unit-tested without a server.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const IMAGE_ACCESS_MODES = ['capability', 'signed'] as const;
export type ImageAccessMode = (typeof IMAGE_ACCESS_MODES)[number];

/** Query parameters of a signed image URL. */
export const SIGNED_URL_PARAMS = { expires: 'exp', keyId: 'kid', signature: 'sig' } as const;

/** HTTP error codes of a refused image URL (README "HTTP"), each with its status. */
export const IMAGE_URL_ERRORS = {
  IMAGE_SIGNATURE_REQUIRED: {
    status: 401,
    message: 'This gateway serves images only through signed URLs: use the URL from the completed frame',
  },
  IMAGE_URL_EXPIRED: {
    status: 403,
    message: 'The image URL has expired: re-send the request with the same requestId for fresh URLs',
  },
  IMAGE_SIGNATURE_INVALID: { status: 403, message: 'The image URL signature is not valid for this image' },
} as const;
export type ImageUrlErrorCode = keyof typeof IMAGE_URL_ERRORS;

export interface UrlSigningKey {
  /** Named in each URL it signs, so verification picks the right secret after a rotation. */
  readonly id: string;
  readonly secret: Buffer;
}

/** Thrown for a malformed ATELIER_IMAGE_URL_SECRETS value; the message never contains a secret. */
export class UrlSigningConfigError extends TypeError {
  override readonly name = 'UrlSigningConfigError';
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
/** About 192 bits from a base64 secret: `openssl rand -base64 32` gives 44 characters. */
export const MIN_SECRET_LENGTH = 32;

/** Parses `id1:secret1,id2:secret2` (the first signs); secrets may contain `:` but not `,`. */
export function parseUrlSigningKeys(spec: string, env = 'ATELIER_IMAGE_URL_SECRETS'): UrlSigningKey[] {
  const entries = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const keys = entries.map((entry, i) => {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const secret = colon < 0 ? '' : entry.slice(colon + 1);
    if (!KEY_ID.test(id)) {
      throw new UrlSigningConfigError(`${env} entry ${i + 1}: expected id:secret with an id of ${KEY_ID.source}`);
    }
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new UrlSigningConfigError(`${env} key ${id}: the secret needs at least ${MIN_SECRET_LENGTH} characters`);
    }
    return { id, secret: Buffer.from(secret, 'utf8') };
  });
  const ids = keys.map((k) => k.id);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated !== undefined) throw new UrlSigningConfigError(`${env} names key ${repeated} twice`);
  return keys;
}

/**
 * The signature of `key` valid until `expiresAt` (Unix seconds): base64url HMAC-SHA256 of a versioned string
 * that holds both, so neither can be changed without the secret (a key cannot contain a newline).
 */
export function imageSignature(key: string, expiresAt: number, secret: Buffer): string {
  return createHmac('sha256', secret).update(`atelier-image-url/v1\n${key}\n${expiresAt}`).digest('base64url');
}

/** The query string (without `?`) that makes `key` fetchable until `expiresAt` (Unix seconds). */
export function signedQuery(key: string, expiresAt: number, signingKey: UrlSigningKey): string {
  const p = SIGNED_URL_PARAMS;
  const sig = imageSignature(key, expiresAt, signingKey.secret);
  return `${p.expires}=${expiresAt}&${p.keyId}=${signingKey.id}&${p.signature}=${sig}`;
}

export type ImageUrlCheck =
  { readonly ok: true; readonly expiresAt?: number } | { readonly ok: false; readonly code: ImageUrlErrorCode };

/**
 * Checks a signed URL's parameters for `key` at `nowMs`. The signature is checked before the expiry, so a URL
 * whose `exp` was edited is INVALID rather than reported as expired or valid.
 */
export function checkSignedQuery(
  key: string,
  params: URLSearchParams,
  nowMs: number,
  keys: readonly UrlSigningKey[],
): ImageUrlCheck {
  const p = SIGNED_URL_PARAMS;
  const sig = params.get(p.signature);
  if (sig === null || sig === '') return { ok: false, code: 'IMAGE_SIGNATURE_REQUIRED' };
  const exp = params.get(p.expires) ?? '';
  const signingKey = keys.find((k) => k.id === params.get(p.keyId));
  if (!/^\d{1,12}$/.test(exp) || !signingKey) return { ok: false, code: 'IMAGE_SIGNATURE_INVALID' };
  const expiresAt = Number(exp);
  // The encoded strings are compared, not the decoded bytes: base64url decoding ignores stray characters and
  // spare bits, and a signature should have exactly one spelling. timingSafeEqual needs equal lengths; the length
  // of a valid signature is public, so checking it first leaks nothing about the secret.
  const expected = Buffer.from(imageSignature(key, expiresAt, signingKey.secret), 'utf8');
  const presented = Buffer.from(sig, 'utf8');
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    return { ok: false, code: 'IMAGE_SIGNATURE_INVALID' };
  }
  if (expiresAt * 1000 <= nowMs) return { ok: false, code: 'IMAGE_URL_EXPIRED' };
  return { ok: true, expiresAt };
}

/** How this gateway builds image URLs and which URLs it serves. */
export interface ImageAccess {
  readonly mode: ImageAccessMode;
  /** The URL of a stored image under `baseUrl` (keys are URL-safe: see assertObjectKey). */
  url(baseUrl: string, key: string, nowMs?: number): string;
  /** Whether a request for `key` with these query parameters may be served. */
  check(key: string, params: URLSearchParams, nowMs?: number): ImageUrlCheck;
}

export interface ImageAccessOptions {
  readonly imageAccess: ImageAccessMode;
  /** `id:secret,...`; required in signed mode. */
  readonly imageUrlSecrets: string;
  /** How long a signed URL stays valid, ms. */
  readonly imageUrlTtlMs: number;
}

export function createImageAccess(options: ImageAccessOptions): ImageAccess {
  const path = (baseUrl: string, key: string): string => `${baseUrl}/v1/images/${key}`;
  // Checked in both modes, so secrets provisioned ahead of a switch to signed are known to be well-formed.
  const keys = parseUrlSigningKeys(options.imageUrlSecrets);
  if (options.imageAccess === 'capability') {
    return { mode: 'capability', url: path, check: () => ({ ok: true }) };
  }
  const signer = keys[0];
  if (!signer) throw new UrlSigningConfigError('ATELIER_IMAGE_ACCESS=signed needs ATELIER_IMAGE_URL_SECRETS');
  return {
    mode: 'signed',
    url: (baseUrl, key, nowMs = Date.now()) =>
      `${path(baseUrl, key)}?${signedQuery(key, Math.ceil((nowMs + options.imageUrlTtlMs) / 1000), signer)}`,
    check: (key, params, nowMs = Date.now()) => checkSignedQuery(key, params, nowMs, keys),
  };
}
