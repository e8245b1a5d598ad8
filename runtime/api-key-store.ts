// API keys kept in Redis, each with its plan (core/plans.ts): created, listed, rotated and revoked through the
// gateway's admin API. Only a key's sha256 is stored, so a copy of Redis does not hand out working keys; the key itself
// is shown once, when it is created or rotated.
//
// Keys, under the deployment prefix: `{apikeys}:<sha256 hex>` -> JSON { keyId, userId, plan } (what authentication
// reads, one GET), and the hash `{apikeys}`: keyId -> JSON { keyId, userId, plan, createdAt, digest } (what the admin
// API lists and what rotation and revocation find the digest by). Both share the `{apikeys}` hash tag: they change
// together in one MULTI, which a Redis Cluster runs only on keys of one slot.
import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from './redis';
import { planSchema, type Plan } from '../core/plans';

export interface ApiKeyRecord {
  readonly keyId: string;
  readonly userId: string;
  readonly plan: Plan;
  readonly createdAt: string;
}

interface StoredKey extends ApiKeyRecord {
  readonly digest: string;
}

/** A new key: `atl_` and 32 random bytes, base64url (256 bits: nothing to guess). */
function newSecret(): string {
  return `atl_${randomBytes(32).toString('base64url')}`;
}

function digestOf(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

export class RedisApiKeyStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private byDigest(digest: string): string {
    return `${this.prefix}{apikeys}:${digest}`;
  }

  private get index(): string {
    return `${this.prefix}{apikeys}`;
  }

  /** The user and plan of a key, or null for an unknown (or revoked) key. */
  async authenticate(apiKey: string): Promise<{ userId: string; plan: Plan } | null> {
    const raw = await this.redis.get(this.byDigest(digestOf(apiKey)));
    if (raw === null) return null;
    const stored = JSON.parse(raw) as { userId: string; plan: unknown };
    return { userId: stored.userId, plan: planSchema.parse(stored.plan) };
  }

  /** Creates a key for `userId`; the returned `key` is the only copy of the secret. */
  async create(userId: string, plan: Plan, now = new Date()): Promise<ApiKeyRecord & { key: string }> {
    const key = newSecret();
    const record: ApiKeyRecord = { keyId: randomBytes(6).toString('hex'), userId, plan, createdAt: now.toISOString() };
    await this.store(record, key);
    return { ...record, key };
  }

  async list(): Promise<ApiKeyRecord[]> {
    const all = await this.redis.hvals(this.index);
    return all
      .map((raw) => JSON.parse(raw) as StoredKey)
      .map(({ keyId, userId, plan, createdAt }) => ({ keyId, userId, plan, createdAt }))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** A new secret for the key: the old one stops working at once; user and plan stay. Null for an unknown keyId. */
  async rotate(keyId: string): Promise<(ApiKeyRecord & { key: string }) | null> {
    const old = await this.find(keyId);
    if (!old) return null;
    const key = newSecret();
    const record: ApiKeyRecord = { keyId, userId: old.userId, plan: old.plan, createdAt: old.createdAt };
    await this.redis.del(this.byDigest(old.digest));
    await this.store(record, key);
    return { ...record, key };
  }

  /** Revokes the key at once; false for an unknown keyId. */
  async revoke(keyId: string): Promise<boolean> {
    const old = await this.find(keyId);
    if (!old) return false;
    await this.redis.multi().del(this.byDigest(old.digest)).hdel(this.index, keyId).exec();
    return true;
  }

  private async find(keyId: string): Promise<StoredKey | undefined> {
    const raw = await this.redis.hget(this.index, keyId);
    return raw === null ? undefined : (JSON.parse(raw) as StoredKey);
  }

  private async store(record: ApiKeyRecord, key: string): Promise<void> {
    const digest = digestOf(key);
    const stored: StoredKey = { ...record, digest };
    await this.redis
      .multi()
      .set(this.byDigest(digest), JSON.stringify({ keyId: record.keyId, userId: record.userId, plan: record.plan }))
      .hset(this.index, record.keyId, JSON.stringify(stored))
      .exec();
  }
}
