// JWT bearer tokens, the alternative to API keys (README "Authentication"): a compact JWS signed with HS256 under one
// of the shared secrets in ATELIER_JWT_SECRETS, whose signed claims carry the user (`sub`) and the plan (`plan`, a
// whole core/plans.ts Plan). The issuer (the deployment's account service, or `npm run admin -- token` in
// development) signs with the first secret and the gateway accepts every listed one, so a secret is rotated without
// refusing tokens already handed out. `withJwtAuth` puts the verifier in front of the API-key stores: a credential
// shaped like a JWS goes to it, any other to the stores, and a refused token is a failed authentication like an
// unknown key (401, counted by the upgrade's per-address throttle). Why a token was refused goes to the log only.
import { decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { DEFAULT_PLAN, planSchema, type Plan } from '../core/plans';
import type { Logger } from '../runtime/logger';
import { parse, type OptionTable } from '../runtime/options';
import { USER_ID_PATTERN, type ApiKeyStore, type AuthenticatedUser } from './auth';

export interface JwtOptions {
  /**
   * Shared HS256 secrets, comma-separated, each at least 32 bytes. The issuer signs with the first; a token signed
   * with any of them is accepted. Rotate by adding the new secret second, moving it first once every gateway has
   * it, and removing the old one after the longest token lifetime. Empty: JWT authentication is off. @default ''
   */
  readonly jwtSecrets: string;
  /** The `iss` a token must carry; empty: not checked. @default '' */
  readonly jwtIssuer: string;
  /** A value the token's `aud` must hold; empty: not checked. @default '' */
  readonly jwtAudience: string;
  /**
   * Longest lifetime a token may have, from its `iat` (or from now, without one) to its `exp`: a longer-lived
   * token is refused, so a leaked one is useless within a day and a plan change reaches every user as fast.
   * Seconds. @default 86400 (24 h)
   */
  readonly jwtMaxLifetimeS: number;
}

/** At least 256 bits of key for HS256 (RFC 7518 §3.2). */
export const MIN_JWT_SECRET_BYTES = 32;
/** Clock skew between the issuer and the gateway tolerated on `exp`, `nbf` and the lifetime. Seconds. */
export const JWT_CLOCK_TOLERANCE_S = 30;
/** Longer credentials are not tried as tokens; a token carrying a plan is well under 1 KiB. */
const MAX_TOKEN_CHARS = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Thrown for malformed JWT options; the message never contains a secret. */
export class JwtConfigError extends TypeError {
  override readonly name = 'JwtConfigError';
}

export const JWT_OPTION_TABLE: OptionTable<JwtOptions> = {
  jwtSecrets: {
    env: 'ATELIER_JWT_SECRETS',
    doc: `HS256 secrets of JWT bearer tokens, comma-separated (${MIN_JWT_SECRET_BYTES}+ bytes each; the first signs, all are accepted; empty = JWT off)`,
    default: '',
    parse: (raw, env) => {
      parseJwtSecrets(raw, env);
      return raw;
    },
  },
  jwtIssuer: {
    env: 'ATELIER_JWT_ISSUER',
    doc: 'Required iss claim of JWTs (empty = any)',
    default: '',
    parse: parse.string,
  },
  jwtAudience: {
    env: 'ATELIER_JWT_AUDIENCE',
    doc: 'Required aud claim of JWTs (empty = any)',
    default: '',
    parse: parse.string,
  },
  jwtMaxLifetimeS: {
    env: 'ATELIER_JWT_MAX_LIFETIME_S',
    doc: 'Longest JWT lifetime accepted, iat (or now) to exp, s',
    default: 86_400,
    parse: parse.int(60, 30 * 86_400),
  },
};

/** The secrets of `ATELIER_JWT_SECRETS`, in order (the first signs). */
export function parseJwtSecrets(spec: string, env = 'ATELIER_JWT_SECRETS'): Uint8Array[] {
  const secrets = parse.list(spec).map((s) => Buffer.from(s, 'utf8'));
  secrets.forEach((secret, i) => {
    if (secret.length < MIN_JWT_SECRET_BYTES) {
      throw new JwtConfigError(`${env} secret ${i + 1}: needs at least ${MIN_JWT_SECRET_BYTES} bytes`);
    }
  });
  return secrets;
}

/** Throws for options that cannot work together (also when handed in as overrides, which skip the parsers). */
export function checkJwtOptions(options: JwtOptions): void {
  const on = parseJwtSecrets(options.jwtSecrets).length > 0;
  if (!on && (options.jwtIssuer !== '' || options.jwtAudience !== '')) {
    throw new JwtConfigError('ATELIER_JWT_ISSUER and ATELIER_JWT_AUDIENCE need ATELIER_JWT_SECRETS');
  }
}

/**
 * Whether a credential is a JWS rather than an API key: three base64url segments, the first a JSON object (the
 * JOSE header). The header check keeps a static key that merely contains two dots going to the key stores.
 */
export function looksLikeJwt(credential: string): boolean {
  if (credential.length > MAX_TOKEN_CHARS || !COMPACT_JWS.test(credential)) return false;
  try {
    decodeProtectedHeader(credential);
    return true;
  } catch {
    return false;
  }
}

/**
 * The outcome of checking a token; `reason` is for the log, never for the client. Refusals anyone can provoke (a
 * forged or malformed token, an expired one) are logged at debug, so guessers cannot flood the log; those of tokens
 * our own issuer signed (a bad sub, plan, iss, aud or lifetime) at warn, since the issuer is the one to fix.
 */
export type JwtCheck =
  | { readonly ok: true; readonly user: AuthenticatedUser }
  | { readonly ok: false; readonly reason: string; readonly level: 'debug' | 'warn' };

/** Verifies tokens against the configured secrets, issuer, audience and lifetime. */
export class JwtVerifier implements ApiKeyStore {
  private readonly secrets: readonly Uint8Array[];

  constructor(
    private readonly options: JwtOptions,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.secrets = parseJwtSecrets(options.jwtSecrets);
    if (this.secrets.length === 0) throw new JwtConfigError('JWT authentication needs ATELIER_JWT_SECRETS');
  }

  async authenticate(token: string): Promise<AuthenticatedUser | null> {
    const check = await this.verify(token);
    if (check.ok) return check.user;
    this.log[check.level]({ reason: check.reason }, 'JWT refused');
    return null;
  }

  async verify(token: string): Promise<JwtCheck> {
    if (!looksLikeJwt(token)) return { ok: false, reason: 'not a compact JWS', level: 'debug' };
    const verifyOptions: JWTVerifyOptions = {
      // Pinned, so neither `none` nor another algorithm named in the token's own header is ever tried.
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'sub'],
      clockTolerance: JWT_CLOCK_TOLERANCE_S,
      currentDate: this.now(),
      ...(this.options.jwtIssuer !== '' ? { issuer: this.options.jwtIssuer } : {}),
      ...(this.options.jwtAudience !== '' ? { audience: this.options.jwtAudience } : {}),
    };
    let failure: unknown;
    for (const secret of this.secrets) {
      try {
        const { payload } = await jwtVerify(token, secret, verifyOptions);
        return this.userFrom(payload);
      } catch (err) {
        failure = err;
        // Only a signature mismatch means another secret may verify it; other failures are the token's own.
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) break;
      }
    }
    return refusal(failure);
  }

  private userFrom(payload: JWTPayload): JwtCheck {
    const nowS = Math.floor(this.now().getTime() / 1000);
    const exp = payload.exp ?? 0;
    const lifetime = exp - Math.min(nowS, payload.iat ?? nowS);
    if (lifetime > this.options.jwtMaxLifetimeS + JWT_CLOCK_TOLERANCE_S) {
      return { ok: false, reason: `lifetime ${lifetime} s is over ${this.options.jwtMaxLifetimeS} s`, level: 'warn' };
    }
    const userId = payload.sub;
    if (typeof userId !== 'string' || !USER_ID_PATTERN.test(userId)) {
      return { ok: false, reason: `sub does not match ${USER_ID_PATTERN}`, level: 'warn' };
    }
    if (payload.plan === undefined) return { ok: true, user: { userId, plan: DEFAULT_PLAN } };
    const plan = planSchema.safeParse(payload.plan);
    if (!plan.success) {
      const fields = plan.error.issues.map((i) => i.path.join('.') || 'plan').join(', ');
      return { ok: false, reason: `invalid plan claim (${fields}) for user ${userId}`, level: 'warn' };
    }
    return { ok: true, user: { userId, plan: plan.data } };
  }
}

/** Why jose refused a token. Its claims are checked only once a secret verified the signature. */
function refusal(err: unknown): JwtCheck {
  if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', level: 'debug' };
  if (err instanceof errors.JWTClaimValidationFailed) {
    const reason = `claim ${err.claim}: ${err.reason}`;
    return { ok: false, reason, level: err.claim === 'nbf' ? 'debug' : 'warn' };
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return { ok: false, reason: 'bad signature', level: 'debug' };
  }
  if (err instanceof errors.JOSEError) return { ok: false, reason: err.code, level: 'debug' };
  return { ok: false, reason: err instanceof Error ? err.message : String(err), level: 'warn' };
}

/**
 * Sends credentials shaped like a JWS to the verifier and all others to the API-key stores. A token never reaches
 * the key stores, so a forged one costs no Redis lookup.
 */
export class JwtOrApiKeyStore implements ApiKeyStore {
  constructor(
    private readonly jwt: ApiKeyStore,
    private readonly apiKeys: ApiKeyStore,
  ) {}

  authenticate(credential: string): Promise<AuthenticatedUser | null> {
    return looksLikeJwt(credential) ? this.jwt.authenticate(credential) : this.apiKeys.authenticate(credential);
  }
}

/** `apiKeys` alone while JWT authentication is off (no secrets), else tokens first as above. */
export function withJwtAuth(apiKeys: ApiKeyStore, options: JwtOptions, log: Logger): ApiKeyStore {
  const secrets = parseJwtSecrets(options.jwtSecrets).length;
  if (secrets === 0) return apiKeys;
  const checks = [options.jwtIssuer && 'iss', options.jwtAudience && 'aud'].filter(Boolean);
  log.info({ secrets, checks }, 'JWT bearer tokens accepted');
  return new JwtOrApiKeyStore(new JwtVerifier(options, log), apiKeys);
}

export interface TokenClaims {
  readonly userId: string;
  readonly plan: Plan;
  /** Seconds from now to `exp`; at most the options' jwtMaxLifetimeS. */
  readonly ttlS: number;
}

/** A token as an issuer makes one: HS256 with the first secret, `sub`, `plan`, `iat`, `exp` and iss/aud if set. */
export async function signJwt(options: JwtOptions, claims: TokenClaims, now = new Date()): Promise<string> {
  const [secret] = parseJwtSecrets(options.jwtSecrets);
  if (!secret) throw new JwtConfigError('ATELIER_JWT_SECRETS is empty: there is no secret to sign with');
  if (!USER_ID_PATTERN.test(claims.userId)) throw new JwtConfigError(`User id must match ${USER_ID_PATTERN}`);
  if (!Number.isInteger(claims.ttlS) || claims.ttlS < 1 || claims.ttlS > options.jwtMaxLifetimeS) {
    throw new JwtConfigError(
      `A token's lifetime must be 1 to ${options.jwtMaxLifetimeS} s (ATELIER_JWT_MAX_LIFETIME_S)`,
    );
  }
  const iat = Math.floor(now.getTime() / 1000);
  const jwt = new SignJWT({ plan: planSchema.parse(claims.plan) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.userId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + claims.ttlS);
  if (options.jwtIssuer !== '') jwt.setIssuer(options.jwtIssuer);
  if (options.jwtAudience !== '') jwt.setAudience(options.jwtAudience);
  return jwt.sign(secret);
}
