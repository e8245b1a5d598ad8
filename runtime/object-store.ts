// Object storage for generated images. `ObjectStore` is the interface the storage activity, the inference
// activity (staging) and the gateway (serving) use; `FsObjectStore` is the default driver, one a newcomer can run
// on one machine. An S3 driver implements the same interface.
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  readonly key: string;
  /** Body size, bytes. */
  readonly size: number;
  /** Hex sha256 of the body; also the HTTP ETag. */
  readonly sha256: string;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** ISO-8601 time of the first put of this body under this key. */
  readonly createdAt: string;
}

export interface ObjectStore {
  /** Stores a body under a key (replacing any previous one) and returns its info. */
  put(key: string, body: Buffer, metadata?: Record<string, string>, contentType?: string): Promise<ObjectInfo>;
  /** The whole body in memory: for small objects the workers read (staged PNGs, manifests). */
  get(key: string): Promise<{ body: Buffer; info: ObjectInfo } | null>;
  /**
   * The body as a stream of exactly `info.size` bytes, for serving objects without holding them in memory. The
   * caller must consume or destroy the stream (destroying it releases what it holds open).
   */
  getStream(key: string): Promise<{ body: Readable; info: ObjectInfo } | null>;
  head(key: string): Promise<ObjectInfo | null>;
  /** Removes a key; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}

/** Thrown by `assertObjectKey` (and so by every store method) for a key that could escape the store's root. */
export class InvalidObjectKeyError extends TypeError {
  override readonly name = 'InvalidObjectKeyError';
}

const KEY_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._:=-]{0,199}$/;

/** Keys are `/`-separated segments of letters, digits and `._:=-`; no empty, `.` or `..` segment; at most 1024 chars. */
export function assertObjectKey(key: string): string {
  const segments = key.split('/');
  const valid =
    key.length > 0 && key.length <= 1024 && segments.every((s) => KEY_SEGMENT.test(s) && s !== '.' && s !== '..');
  if (!valid) throw new InvalidObjectKeyError(`Invalid object key ${JSON.stringify(key.slice(0, 80))}`);
  return key;
}

export function sha256Hex(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

/**
 * Files under `rootDir/<key>` with a sidecar `<key>.meta.json`. Writes go to a temporary file and are renamed
 * into place, so a reader never sees a half-written object and a crash leaves no torn file.
 */
export class FsObjectStore implements ObjectStore {
  constructor(readonly rootDir: string) {}

  private paths(key: string): { body: string; meta: string } {
    const body = path.join(this.rootDir, assertObjectKey(key));
    return { body, meta: `${body}.meta.json` };
  }

  async put(
    key: string,
    body: Buffer,
    metadata: Record<string, string> = {},
    contentType = 'image/png',
  ): Promise<ObjectInfo> {
    const p = this.paths(key);
    const sha256 = sha256Hex(body);
    const previous = await this.head(key);
    const info: ObjectInfo = {
      key,
      size: body.length,
      sha256,
      contentType,
      metadata,
      createdAt: previous?.sha256 === sha256 ? previous.createdAt : new Date().toISOString(),
    };
    await mkdir(path.dirname(p.body), { recursive: true });
    await atomicWrite(p.body, body);
    await atomicWrite(p.meta, Buffer.from(JSON.stringify(info)));
    return info;
  }

  async get(key: string): Promise<{ body: Buffer; info: ObjectInfo } | null> {
    const info = await this.head(key);
    if (!info) return null;
    try {
      return { body: await readFile(this.paths(key).body), info };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async getStream(key: string): Promise<{ body: Readable; info: ObjectInfo } | null> {
    // The metadata and the body are two files, and a put of another body under the key replaces the body first:
    // the open handle keeps the body it opened, so its size must match the metadata read after opening it, or
    // the reader raced a put and tries again (keys the gateway serves are written once, so this is rare).
    for (let attempt = 1; attempt <= 3; attempt++) {
      const handle = await openIfPresent(this.paths(key).body);
      if (!handle) return null;
      const opened = await Promise.all([this.head(key), handle.stat()]).catch(async (err: unknown) => {
        await handle.close().catch(() => undefined);
        throw err;
      });
      const [info, { size }] = opened;
      if (info && size === info.size) return { body: handle.createReadStream(), info };
      await handle.close();
      if (!info) return null;
    }
    throw new Error(`Object ${key} kept changing while it was being opened`);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      return JSON.parse(await readFile(this.paths(key).meta, 'utf8')) as ObjectInfo;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.paths(key);
    // Metadata first: without it the object is invisible, so a crash in between leaves no visible torn state.
    await rm(p.meta, { force: true });
    await rm(p.body, { force: true });
  }

  /** Whether the body file exists, metadata or not; for tests of torn states. */
  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.paths(key).body);
      return true;
    } catch {
      return false;
    }
  }
}

async function atomicWrite(file: string, body: Buffer): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  await writeFile(tmp, body);
  await rename(tmp, file);
}

async function openIfPresent(file: string): Promise<FileHandle | null> {
  try {
    return await open(file, 'r');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
