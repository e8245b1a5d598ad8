// JWT bearer tokens (gateway/jwt-auth.ts): which tokens authenticate which user with which plan, why each kind of bad
// token is refused (expiry, not-yet-valid, signature, issuer, audience, subject, plan, lifetime, algorithm), secret
// rotation, telling tokens from API keys, the options that turn it on, and tokens minted the way the admin CLI does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';
import { DEFAULT_PLAN, type Plan } from '../../core/plans';
import type { Logger } from '../../runtime/logger';
import { StaticApiKeyStore, type ApiKeyStore } from '../../gateway/auth';
import {
  JwtConfigError,
  JwtOrApiKeyStore,
  JwtVerifier,
  looksLikeJwt,
  signJwt,
  withJwtAuth,
  type JwtOptions,
} from '../../gateway/jwt-auth';
import { resolveGatewayOptions } from '../../gateway/options';
import { ttlSeconds } from '../../client/admin-cli';

const SECRET_1 = 'first-jwt-secret-0123456789abcdefghij';
const SECRET_2 = 'second-jwt-secret-0123456789abcdefghi';
const NOW_S = Date.UTC(2030, 0, 1, 12) / 1000;
const now = (): Date => new Date(NOW_S * 1000);
const PLAN: Plan = { tiers: ['turbo', 'fast'], ratePerMinute: 20, maxInFlight: 5, fairnessWeight: 2 };
const OPTIONS: JwtOptions = {
  jwtSecrets: `${SECRET_1},${SECRET_2}`,
  jwtIssuer: '',
  jwtAudience: '',
  jwtMaxLifetimeS: 86_400,
};

/** Log lines the verifier wrote, as [level, reason]. */
function recordingLog(): { log: Logger; lines: [string, unknown][] } {
  const lines: [string, unknown][] = [];
  const at = (level: string) => (fields: { reason?: unknown }) => void lines.push([level, fields.reason]);
  return { log: { debug: at('debug'), warn: at('warn'), info: at('info') } as unknown as Logger, lines };
}

function verifier(options: Partial<JwtOptions> = {}): JwtVerifier {
  return new JwtVerifier({ ...OPTIONS, ...options }, recordingLog().log, now);
}

/** A token with `claims` (sub alice, the plan above, issued now, valid an hour unless overridden). */
function token(claims: JWTPayload = {}, secret = SECRET_1, alg = 'HS256'): Promise<string> {
  const payload: JWTPayload = { sub: 'alice', plan: PLAN, iat: NOW_S, exp: NOW_S + 3600, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg }).sign(Buffer.from(secret));
}

async function refusedBecause(jwt: string, reason: RegExp, options: Partial<JwtOptions> = {}): Promise<void> {
  const check = await verifier(options).verify(jwt);
  assert.equal(check.ok, false, `accepted: ${jwt}`);
  if (!check.ok) assert.match(check.reason, reason);
}

void test('a valid token authenticates its sub with the plan from its claims; no plan claim means the default plan', async () => {
  assert.deepEqual(await verifier().authenticate(await token()), { userId: 'alice', plan: PLAN });
  const planless = await token({ plan: undefined, sub: 'bob.b-1_x' });
  assert.deepEqual(await verifier().authenticate(planless), { userId: 'bob.b-1_x', plan: DEFAULT_PLAN });
});

void test('expiry and not-before are enforced with 30 s of clock tolerance', async () => {
  assert.equal((await verifier().verify(await token({ exp: NOW_S - 20 }))).ok, true, 'within the tolerance');
  await refusedBecause(await token({ exp: NOW_S - 31 }), /^expired$/);
  await refusedBecause(await token({ exp: undefined }), /exp/);
  assert.equal((await verifier().verify(await token({ nbf: NOW_S + 20 }))).ok, true, 'within the tolerance');
  await refusedBecause(await token({ nbf: NOW_S + 120 }), /claim nbf/);
});

void test('a token signed with another secret, or edited after signing, is refused', async () => {
  await refusedBecause(await token({}, 'some-other-secret-0123456789abcdefghij'), /bad signature/);
  const [header, , signature] = (await token()).split('.');
  const forged = Buffer.from(JSON.stringify({ sub: 'mallory', plan: PLAN, exp: NOW_S + 60 })).toString('base64url');
  await refusedBecause(`${header}.${forged}.${signature}`, /bad signature/);
});

void test('every listed secret verifies (rotation), and a failure after the signature is reported as such', async () => {
  assert.deepEqual(await verifier().authenticate(await token({}, SECRET_2)), { userId: 'alice', plan: PLAN });
  await refusedBecause(await token({ exp: NOW_S - 600 }, SECRET_2), /^expired$/);
  await refusedBecause(await token({}, SECRET_2), /bad signature/, { jwtSecrets: SECRET_1 });
});

void test('iss and aud are checked when configured, ignored otherwise', async () => {
  const options = { jwtIssuer: 'https://accounts.example', jwtAudience: 'atelier' };
  const right = await token({ iss: options.jwtIssuer, aud: ['other', 'atelier'] });
  assert.equal((await verifier(options).verify(right)).ok, true);
  await refusedBecause(await token({ iss: 'https://evil.example', aud: 'atelier' }), /claim iss/, options);
  await refusedBecause(await token({ aud: 'atelier' }), /claim iss/, options);
  await refusedBecause(await token({ iss: options.jwtIssuer, aud: 'someone-else' }), /claim aud/, options);
  assert.equal((await verifier().verify(await token({ iss: 'anyone', aud: 'anything' }))).ok, true);
});

void test('sub is required and must be a user id (no ":", at most 64 characters)', async () => {
  await refusedBecause(await token({ sub: undefined }), /sub/);
  for (const sub of ['a:b', '', '-lead', 'x'.repeat(65), 42, ['alice']]) {
    await refusedBecause(await token({ sub: sub as string }), /sub/);
  }
});

void test('a plan claim that is not a whole, valid plan is refused rather than defaulted', async () => {
  for (const plan of [
    { ...PLAN, tiers: ['platinum'] },
    { ...PLAN, tiers: [] },
    { ...PLAN, ratePerMinute: 0 },
    { tiers: ['fast'] },
    { ...PLAN, extra: true },
    'pro',
    null,
  ]) {
    await refusedBecause(await token({ plan }), /invalid plan claim/);
  }
});

void test('tokens living longer than the maximum lifetime are refused', async () => {
  await refusedBecause(await token({ exp: NOW_S + 86_400 + 3600 }), /lifetime/);
  await refusedBecause(await token({ iat: undefined, exp: NOW_S + 86_400 + 3600 }), /lifetime/);
  await refusedBecause(await token({ iat: NOW_S - 7 * 86_400, exp: NOW_S + 60 }), /lifetime/);
  await refusedBecause(await token({ exp: NOW_S + 7200 }), /lifetime/, { jwtMaxLifetimeS: 3600 });
});

void test('only HS256 is accepted: unsecured tokens and other algorithms are refused', async () => {
  const unsecured = new UnsecuredJWT({ sub: 'alice', plan: PLAN }).setExpirationTime(NOW_S + 60).encode();
  await refusedBecause(unsecured, /not a compact JWS/);
  await refusedBecause(await token({}, SECRET_1, 'HS512'), /ALG_NOT_ALLOWED/);
});

void test('API keys are not tokens: they go to the key stores, tokens go to the verifier only', async () => {
  const jwt = await token();
  assert.equal(looksLikeJwt(jwt), true);
  for (const key of ['dev-key', `atl_${'A'.repeat(43)}`, 'a.b.c', 'x.y', `${jwt}.extra`, `${jwt}=`, '']) {
    assert.equal(looksLikeJwt(key), false, key);
  }
  const asked: string[] = [];
  const keys: ApiKeyStore = {
    authenticate: (k) => {
      asked.push(k);
      return Promise.resolve(k === 'a.b.c' ? { userId: 'dotted', plan: DEFAULT_PLAN } : null);
    },
  };
  const store = new JwtOrApiKeyStore(verifier(), keys);
  assert.equal((await store.authenticate('a.b.c'))?.userId, 'dotted', 'a static key with dots still works');
  assert.equal((await store.authenticate(jwt))?.userId, 'alice');
  assert.equal(await store.authenticate(await token({}, 'some-other-secret-0123456789abcdefghij')), null);
  assert.deepEqual(asked, ['a.b.c'], 'no token reached the key stores');
});

void test('a refused token is a failed authentication, its reason logged and nothing thrown', async () => {
  const { log, lines } = recordingLog();
  const store = withJwtAuth(StaticApiKeyStore.parse('k1:carol'), OPTIONS, log);
  const realNow = Math.floor(Date.now() / 1000);
  assert.equal((await store.authenticate('k1'))?.userId, 'carol');
  assert.equal(await store.authenticate(await token({ iat: realNow - 7200, exp: realNow - 3600 })), null);
  const fresh = { iat: realNow, exp: realNow + 60 };
  assert.equal(await store.authenticate(await token(fresh, 'some-other-secret-0123456789abcdefghij')), null);
  assert.equal(await store.authenticate(await token({ ...fresh, sub: 'a:b' })), null);
  assert.deepEqual(
    lines.slice(1).map(([level, reason]) => `${level} ${String(reason).split(' ')[0]}`),
    ['debug expired', 'debug bad', 'warn sub'],
    'what anyone can send is logged at debug; a bad claim in a token our issuer signed at warn',
  );
  const off = StaticApiKeyStore.parse('k1:carol');
  assert.equal(withJwtAuth(off, { ...OPTIONS, jwtSecrets: '' }, log), off, 'no secrets: JWT authentication is off');
});

void test('ATELIER_JWT_* options: short secrets and iss/aud without secrets stop the gateway; secrets never echoed', () => {
  const o = resolveGatewayOptions({ ATELIER_JWT_SECRETS: ` ${SECRET_1} , ${SECRET_2} `, ATELIER_JWT_AUDIENCE: 'a' });
  assert.equal(o.jwtAudience, 'a');
  assert.equal(resolveGatewayOptions({}).jwtSecrets, '', 'off by default');
  const refused = (env: Record<string, string>, pattern: RegExp, overrides = {}) =>
    assert.throws(
      () => resolveGatewayOptions(env, overrides),
      (err: unknown) => err instanceof TypeError && pattern.test(err.message) && !err.message.includes('short'),
    );
  refused({ ATELIER_JWT_SECRETS: `${SECRET_1},short-secret` }, /ATELIER_JWT_SECRETS secret 2: needs at least 32/);
  refused({}, /secret 1/, { jwtSecrets: 'short-secret' });
  refused({ ATELIER_JWT_ISSUER: 'https://accounts.example' }, /need ATELIER_JWT_SECRETS/);
  refused({ ATELIER_JWT_MAX_LIFETIME_S: '10' }, /ATELIER_JWT_MAX_LIFETIME_S/);
  assert.throws(() => new JwtVerifier({ ...OPTIONS, jwtSecrets: '' }, recordingLog().log), JwtConfigError);
});

void test('signJwt (npm run admin -- token) signs with the first secret, with iss/aud and a bounded lifetime', async () => {
  const options = { ...OPTIONS, jwtIssuer: 'dev', jwtAudience: 'atelier' };
  const jwt = await signJwt(options, { userId: 'dana', plan: PLAN, ttlS: 3600 }, now());
  assert.deepEqual(await verifier(options).authenticate(jwt), { userId: 'dana', plan: PLAN });
  await refusedBecause(jwt, /bad signature/, { ...options, jwtSecrets: SECRET_2 });
  const claims = { userId: 'dana', plan: PLAN };
  await assert.rejects(signJwt(options, { ...claims, ttlS: 86_401 }), /lifetime/);
  await assert.rejects(signJwt(options, { ...claims, userId: 'a:b', ttlS: 60 }), /User id/);
  await assert.rejects(signJwt({ ...options, jwtSecrets: '' }, { ...claims, ttlS: 60 }), JwtConfigError);
  assert.deepEqual(['90', '90s', '30m', '1h', '1d'].map(ttlSeconds), [90, 90, 1800, 3600, 86_400]);
  for (const bad of ['', '1w', '-5', '1.5h', 'h']) assert.throws(() => ttlSeconds(bad), /--ttl/, bad);
});
