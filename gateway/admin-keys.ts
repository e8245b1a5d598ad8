// The admin API's key management (under /admin/keys, behind admin.ts's token check): API keys with their plans,
// kept hashed in Redis (runtime/api-key-store.ts). A key's secret is in the answer to create and rotate only.
//
//   GET    /admin/keys                     every key: keyId, userId, plan, createdAt (never the secret)
//   POST   /admin/keys                     body { userId, plan?: { tiers?, ratePerMinute?, maxInFlight?, fairnessWeight? } }
//                                          -> 201 { key, keyId, userId, plan, createdAt }; missing plan fields: DEFAULT_PLAN
//   POST   /admin/keys/<keyId>/rotate      -> 200 { key, ... }; the old secret stops working at once
//   DELETE /admin/keys/<keyId>             -> 200 { revoked: keyId }
//
// Errors: 400 BAD_REQUEST (with details), 404 UNKNOWN_KEY, 405 METHOD_NOT_ALLOWED, 413 BODY_TOO_LARGE.
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { DEFAULT_PLAN, planSchema } from '../core/plans';
import type { Logger } from '../runtime/logger';
import type { RedisApiKeyStore } from '../runtime/api-key-store';
import { USER_ID_PATTERN } from './auth';

type Reply = (status: number, body: unknown, headers?: Record<string, string>) => void;

const MAX_BODY_BYTES = 16 * 1024;

const createSchema = z.strictObject({
  userId: z.string().regex(USER_ID_PATTERN, 'letters, digits and ._- only (no ":"), at most 64'),
  plan: planSchema.partial().optional(),
});

class BodyTooLarge extends Error {}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.trim() === '' ? {} : (JSON.parse(text) as unknown);
}

function zodDetails(error: z.ZodError): Record<string, string> {
  return Object.fromEntries(error.issues.map((i) => [i.path.join('.') || 'body', i.message]));
}

export async function handleKeys(
  deps: { readonly keys: RedisApiKeyStore; readonly log: Logger },
  req: IncomingMessage,
  parts: readonly string[],
  reply: Reply,
): Promise<void> {
  const [, keyId, action] = parts;
  const who = { remote: req.socket.remoteAddress, method: req.method, keyId };
  if (keyId === undefined) {
    if (req.method === 'GET') return reply(200, { keys: await deps.keys.list() });
    if (req.method !== 'POST') return reply(405, { error: 'METHOD_NOT_ALLOWED', message: 'GET or POST' });
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (err) {
      if (err instanceof BodyTooLarge)
        return reply(413, { error: 'BODY_TOO_LARGE', message: `At most ${MAX_BODY_BYTES} bytes` });
      return reply(400, { error: 'BAD_REQUEST', message: 'The body is not JSON' });
    }
    const parsed = createSchema.safeParse(body);
    if (!parsed.success) {
      return reply(400, { error: 'BAD_REQUEST', message: 'Invalid key request', details: zodDetails(parsed.error) });
    }
    const created = await deps.keys.create(parsed.data.userId, { ...DEFAULT_PLAN, ...parsed.data.plan });
    deps.log.warn({ ...who, keyId: created.keyId, userId: created.userId }, 'admin: API key created');
    return reply(201, created);
  }
  if (action === 'rotate' && parts.length === 3) {
    if (req.method !== 'POST') return reply(405, { error: 'METHOD_NOT_ALLOWED', message: 'POST only' });
    const rotated = await deps.keys.rotate(keyId);
    if (!rotated) return reply(404, { error: 'UNKNOWN_KEY', message: `No key ${keyId}` });
    deps.log.warn(who, 'admin: API key rotated');
    return reply(200, rotated);
  }
  if (action === undefined && parts.length === 2) {
    if (req.method !== 'DELETE') return reply(405, { error: 'METHOD_NOT_ALLOWED', message: 'DELETE only' });
    if (!(await deps.keys.revoke(keyId))) return reply(404, { error: 'UNKNOWN_KEY', message: `No key ${keyId}` });
    deps.log.warn(who, 'admin: API key revoked');
    return reply(200, { revoked: keyId });
  }
  return reply(404, { error: 'NOT_FOUND', message: 'No such key route' });
}
