// Where a request's images live in the object store. The inference activity stages PNGs, the storage activity
// moves them to their final keys, the gateway serves the final keys. Keys are grouped by user, then request:
// a client's requestId is unique per user only, so two users reusing an id must not share (or overwrite) objects.
import { createHash } from 'node:crypto';

/** A user id that is a valid object-key segment is used as is (readable in listings); any other is hashed. */
const KEY_SAFE_USER = /^[A-Za-z0-9][A-Za-z0-9._=-]{0,63}$/;

function userSegment(userId: string): string {
  return KEY_SAFE_USER.test(userId) ? userId : `u-${createHash('sha256').update(userId).digest('hex').slice(0, 32)}`;
}

/** `<user>/<requestId>`: request ids match REQUEST_ID_PATTERN, which is a subset of the key alphabet. */
export function requestKeyPath(userId: string, requestId: string): string {
  return `${userSegment(userId)}/${requestId}`;
}

/** Where the inference activity writes image `index` before storage takes it over. */
export function stagingImageKey(userId: string, requestId: string, index: number): string {
  return `staging/${requestKeyPath(userId, requestId)}/${index}.png`;
}

/** Final key of image `index`; the content hash makes a key immutable, so caches may keep it forever. */
export function finalImageKey(userId: string, requestId: string, index: number, sha256: string): string {
  return `images/${requestKeyPath(userId, requestId)}/${index}-${sha256.slice(0, 16)}.png`;
}

/** Written last by the storage activity: its presence means every final image is in place. */
export function imageManifestKey(userId: string, requestId: string): string {
  return `images/${requestKeyPath(userId, requestId)}/manifest.json`;
}

/** Hex sha256 of the prompt, recorded in image metadata instead of the prompt text. */
export function promptHash(prompt: string): string {
  return createHash('sha256').update(prompt).digest('hex');
}
