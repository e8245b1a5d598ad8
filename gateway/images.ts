// GET and HEAD /v1/images/<key>: generated images from the object store. Only final image keys are served
// (runtime/object-keys.ts isFinalImageKey): a request's manifest, which lists its image keys, staging copies
// and uploads answer 404 as if absent. In signed mode (image-urls.ts) a URL without a valid, unexpired signature
// is refused before the store is asked, so a refusal says nothing about whether the image exists. Bodies are
// streamed from the store: a large image costs the gateway a read buffer, not its size in memory.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { isFinalImageKey } from '../runtime/object-keys';
import type { Logger } from '../runtime/logger';
import { assertObjectKey, InvalidObjectKeyError, type ObjectInfo, type ObjectStore } from '../runtime/object-store';
import { IMAGE_URL_ERRORS, type ImageAccess, type ImageUrlCheck } from './image-urls';

export const IMAGE_ROUTE_PREFIX = '/v1/images/';

export interface ImageRouteDeps {
  readonly objectStore: ObjectStore;
  /** Which URLs may be served (capability or signed). */
  readonly images: ImageAccess;
  readonly log: Logger;
}

/** Sends a JSON body with the gateway's usual headers (http.ts). */
export type SendJson = (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) => void;

/** Serves one image request; `rawPath` is the request path as sent, before any normalization. */
export async function serveImage(
  deps: ImageRouteDeps,
  req: IncomingMessage,
  res: ServerResponse,
  rawPath: string,
  sendJson: SendJson,
): Promise<void> {
  const key = readKey(rawPath.slice(IMAGE_ROUTE_PREFIX.length));
  if (key === null) {
    sendJson(res, 400, { error: 'BAD_KEY', message: 'Invalid image key' });
    return;
  }
  const notFound = (): void => sendJson(res, 404, { error: 'NOT_FOUND', message: `No image ${key}` });
  if (!isFinalImageKey(key)) {
    notFound();
    return;
  }
  const access = deps.images.check(key, queryOf(req.url));
  if (!access.ok) {
    const { status, message } = IMAGE_URL_ERRORS[access.code];
    sendJson(res, status, { error: access.code, message });
    return;
  }
  if (req.method === 'HEAD') {
    const info = await deps.objectStore.head(key);
    if (!info) return notFound();
    answerWithoutBody(req, res, info, access);
    return;
  }
  const object = await deps.objectStore.getStream(key);
  if (!object) return notFound();
  if (answerWithoutBody(req, res, object.info, access)) {
    object.body.destroy();
    return;
  }
  await streamBody(deps.log, key, object.body, res);
}

/** The decoded key, or null when it is not a valid object key (`..`, empty segments, bad escapes). */
function readKey(encoded: string): string | null {
  try {
    return assertObjectKey(decodeURIComponent(encoded));
  } catch (err) {
    if (err instanceof URIError || err instanceof InvalidObjectKeyError) return null;
    throw err;
  }
}

function queryOf(url: string | undefined): URLSearchParams {
  const at = (url ?? '').indexOf('?');
  return new URLSearchParams(at < 0 ? '' : (url ?? '').slice(at + 1));
}

/**
 * Answers a HEAD (headers only) or a GET whose If-None-Match matches (304) and returns true; returns false for a
 * GET that needs the body. The ETag is the sha256 the store recorded at put time, so nothing is hashed here.
 */
function answerWithoutBody(
  req: IncomingMessage,
  res: ServerResponse,
  info: ObjectInfo,
  access: Extract<ImageUrlCheck, { ok: true }>,
): boolean {
  const etag = `"${info.sha256}"`;
  const headers = {
    ETag: etag,
    'Cache-Control': cacheControl(access),
    'Content-Type': info.contentType || 'image/png',
    'X-Content-Type-Options': 'nosniff',
  };
  if (ifNoneMatch(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  res.writeHead(200, { ...headers, 'Content-Length': info.size });
  if (req.method !== 'HEAD') return false;
  res.end();
  return true;
}

/**
 * Capability keys are never reused for different content (finalImageKey), so any cache may keep them forever. A
 * signed response is cached only privately and only while its URL is valid: a shared cache would go on serving it
 * to whoever presents the URL after it expired.
 */
function cacheControl(access: Extract<ImageUrlCheck, { ok: true }>): string {
  if (access.expiresAt === undefined) return 'public, max-age=31536000, immutable';
  const remaining = Math.max(0, Math.floor((access.expiresAt * 1000 - Date.now()) / 1000));
  return `private, max-age=${remaining}`;
}

async function streamBody(log: Logger, key: string, body: NodeJS.ReadableStream, res: ServerResponse): Promise<void> {
  try {
    await pipeline(body, res);
  } catch (err) {
    // The headers are out, so the response can only be cut short (pipeline has destroyed both ends): the client
    // sees a body shorter than Content-Length, never a wrong one. A client that went away is routine.
    const clientLeft = (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
    if (clientLeft) log.debug({ key }, 'Image download aborted by the client');
    else log.warn({ err, key }, 'Image stream failed');
  }
}

function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
