// API-key authentication of WebSocket upgrades: where the key is read from, and the `ApiKeyStore` interface
// with its static driver (keys from ATELIER_API_KEYS). A database-backed driver implements the same interface.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { DEFAULT_PLAN, type Plan } from '../core/plans';
import { TIERS } from '../core/tiers';

export interface AuthenticatedUser {
  readonly userId: string;
  /** What the key may do (core/plans.ts). */
  readonly plan: Plan;
}

/**
 * The plan of static development keys (ATELIER_API_KEYS) unless the gateway's options say otherwise: every tier, seed
 * 003's 100 requests a minute and 50 in flight.
 */
export const STATIC_KEY_PLAN: Plan = { ...DEFAULT_PLAN, tiers: [...TIERS] };

export interface ApiKeyStore {
  /** The user an API key belongs to, or null for an unknown key. */
  authenticate(apiKey: string): Promise<AuthenticatedUser | null>;
}

/**
 * User ids appear inside workflow ids (`gen:<user>:<requestId>`) and request ids may contain `:`, so a user id
 * must not: otherwise user `a` asking for request `b:c` would name user `a:b`'s request `c`.
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Thrown by `StaticApiKeyStore.parse` for a malformed ATELIER_API_KEYS value. */
export class ApiKeyConfigError extends TypeError {
  override readonly name = 'ApiKeyConfigError';
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Keys held as sha256 digests and compared with `timingSafeEqual` against every entry (no early exit), so
 * neither the comparison nor the position of a match leaks through timing. Hashing first gives equal-length
 * buffers, which `timingSafeEqual` requires.
 */
export class StaticApiKeyStore implements ApiKeyStore {
  private readonly entries: readonly { digest: Buffer; userId: string }[];

  constructor(
    keys: ReadonlyArray<{ apiKey: string; userId: string }>,
    private readonly plan: Plan = STATIC_KEY_PLAN,
  ) {
    for (const { apiKey, userId } of keys) {
      if (apiKey.length === 0) throw new ApiKeyConfigError('An API key must not be empty');
      if (!USER_ID_PATTERN.test(userId)) {
        throw new ApiKeyConfigError(`User id ${JSON.stringify(userId)} must match ${USER_ID_PATTERN} (no ':')`);
      }
    }
    this.entries = keys.map(({ apiKey, userId }) => ({ digest: sha256(apiKey), userId }));
  }

  /** Parses `key:userId,key2:userId2`. The user id is after the last `:`, so keys may contain `:`. */
  static parse(spec: string, plan: Plan = STATIC_KEY_PLAN): StaticApiKeyStore {
    const keys = spec
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((pair) => {
        const colon = pair.lastIndexOf(':');
        if (colon <= 0 || colon === pair.length - 1) {
          throw new ApiKeyConfigError(
            `ATELIER_API_KEYS entry ${JSON.stringify(pair.slice(0, 4) + '…')} is not key:userId`,
          );
        }
        return { apiKey: pair.slice(0, colon), userId: pair.slice(colon + 1) };
      });
    if (keys.length === 0) throw new ApiKeyConfigError('ATELIER_API_KEYS lists no keys');
    return new StaticApiKeyStore(keys, plan);
  }

  async authenticate(apiKey: string): Promise<AuthenticatedUser | null> {
    const presented = sha256(apiKey);
    let match: string | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(presented, entry.digest) && match === null) match = entry.userId;
    }
    return match === null ? null : { userId: match, plan: this.plan };
  }
}

/** The key from `Authorization: Bearer <key>`, else from the `api_key` query parameter, else null. */
export function apiKeyFromRequest(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return m?.[1] ?? null;
  }
  const query = new URL(req.url ?? '/', 'http://gateway').searchParams.get('api_key');
  return query === null || query === '' ? null : query;
}

/**
 * Several key stores asked in turn: static development keys first (no I/O), then the keys created through the admin
 * API (runtime/api-key-store.ts). The first that knows the key answers.
 */
export class ChainedApiKeyStore implements ApiKeyStore {
  constructor(private readonly stores: readonly ApiKeyStore[]) {}

  async authenticate(apiKey: string): Promise<AuthenticatedUser | null> {
    for (const store of this.stores) {
      const user = await store.authenticate(apiKey);
      if (user) return user;
    }
    return null;
  }
}
