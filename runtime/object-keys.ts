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

/** The workflow run an activity works for, as activity info has it (absent only outside a workflow). */
export function activityRunId(info: { readonly workflowExecution?: { readonly runId: string } }): string {
  return info.workflowExecution?.runId ?? 'no-run';
}

/** A workflow run id (a UUID) as a key segment; anything else is hashed. */
function runSegment(runId: string): string {
  return /^[A-Za-z0-9-]{1,64}$/.test(runId)
    ? runId
    : `r-${createHash('sha256').update(runId).digest('hex').slice(0, 32)}`;
}

/**
 * Where the inference activity writes image `index` of one run of a request's workflow before storage takes it
 * over. The run keeps a reused requestId (after Temporal's retention) apart from the earlier request's leftovers.
 */
export function stagingImageKey(userId: string, requestId: string, runId: string, index: number): string {
  return `staging/${requestKeyPath(userId, requestId)}/${runSegment(runId)}/${index}.png`;
}

/** Staging key written by workers before runs were part of it; storage still takes it for requests staged then. */
export function legacyStagingImageKey(userId: string, requestId: string, index: number): string {
  return `staging/${requestKeyPath(userId, requestId)}/${index}.png`;
}

/**
 * Final key of image `index` of one run: `images/<user>/<requestId>/<index>-<token>.png`. The gateway serves final
 * keys to anyone who presents one (README "Image access"), so the key is the capability and the token is its secret
 * part: 128 bits of sha256 over the workflow run id (a random UUID that no client of a completed request is told)
 * and the image's own sha256. The user, the requestId and even the prompt and seed (which fix the bytes) are not
 * enough to name it. It is still a function of the run and the bytes only, so a retry of the storage activity in
 * the same run writes the same key, and a key never names two different bodies (caches may keep it forever).
 */
export function finalImageKey(userId: string, requestId: string, runId: string, index: number, sha256: string): string {
  const token = createHash('sha256').update(`${runId}\n${sha256}`).digest('hex').slice(0, 32);
  return `images/${requestKeyPath(userId, requestId)}/${index}-${token}.png`;
}

/**
 * Whether a key has the shape of a final image, today's 32-hex token or the 16-hex content hash of keys stored
 * before tokens. Only these are ever served: manifests, staging copies and uploads never are.
 */
export function isFinalImageKey(key: string): boolean {
  return /^images\/[^/]+\/[^/]+\/\d{1,3}-(?:[0-9a-f]{16}|[0-9a-f]{32})\.png$/.test(key);
}

/**
 * Written last by the storage activity: its presence means every final image is in place. It lists the request's
 * image keys, so it is never served (isFinalImageKey).
 */
export function imageManifestKey(userId: string, requestId: string): string {
  return `images/${requestKeyPath(userId, requestId)}/manifest.json`;
}

/** Hex sha256 of the prompt, recorded in image metadata instead of the prompt text. */
export function promptHash(prompt: string): string {
  return createHash('sha256').update(prompt).digest('hex');
}
