// Fairness between users on a shared GPU task queue. Tiers order a queue by Temporal priority (core/tiers.ts); within
// a priority, Temporal's task-queue fairness dispatches each fairness key's backlog in proportion to its weight, so
// one user's flood of relax requests no longer holds every other user's relax requests behind it in arrival order.
// The key is the user; the weight is the user's plan's (issue 11), 1 until plans exist. The server side is the dev
// server's dynamic config (infra/temporal.ts). Pure, so workflow code can import it.
import type { GenerationRequest } from './request';

/**
 * Temporal refuses a longer fairness key (UTF-8 bytes) with InvalidArgument, which fails the workflow task that
 * scheduled the activity, again on every retry: the request would be stuck, so a longer user id is shortened.
 */
export const FAIRNESS_KEY_MAX_BYTES = 64;

/** Every user's share when their plan sets none: equal shares. */
export const DEFAULT_FAIRNESS_WEIGHT = 1;

/** The weights Temporal applies; it clamps others into this range, and refuses a negative one. */
export const FAIRNESS_WEIGHT_MIN = 0.001;
export const FAIRNESS_WEIGHT_MAX = 1000;

/** The fairness fields of a GPU activity's Temporal priority. */
export interface Fairness {
  readonly fairnessKey: string;
  readonly fairnessWeight: number;
}

function utf8Bytes(codePoint: number): number {
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  return codePoint < 0x10000 ? 3 : 4;
}

/** FNV-1a over the UTF-16 code units: deterministic and dependency-free, as workflow code needs. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/**
 * The fairness key of a user: the user id itself when it fits (the gateway's ids always do: ASCII, at most 64), else
 * as much of it as fits beside a hash of the whole id, so two long ids that share a prefix still get their own shares.
 */
export function fairnessKeyOf(userId: string): string {
  let bytes = 0;
  for (const char of userId) bytes += utf8Bytes(char.codePointAt(0) ?? 0);
  if (bytes <= FAIRNESS_KEY_MAX_BYTES) return userId;
  const suffix = `#${fnv1a(userId)}`;
  let prefix = '';
  bytes = suffix.length;
  for (const char of userId) {
    bytes += utf8Bytes(char.codePointAt(0) ?? 0);
    if (bytes > FAIRNESS_KEY_MAX_BYTES) break;
    prefix += char;
  }
  return prefix + suffix;
}

/**
 * The weight sent to Temporal. An absent or meaningless weight is the default: Temporal reads 0 as "inherit" and
 * refuses a negative one (failing the workflow task, as for a long key), so neither is ever sent.
 */
export function fairnessWeightOf(weight: number | undefined): number {
  if (weight === undefined || !Number.isFinite(weight) || weight <= 0) return DEFAULT_FAIRNESS_WEIGHT;
  return Math.min(FAIRNESS_WEIGHT_MAX, Math.max(FAIRNESS_WEIGHT_MIN, weight));
}

/** The fairness key and weight of a request's GPU work. */
export function requestFairness(req: Pick<GenerationRequest, 'userId' | 'fairnessWeight'>): Fairness {
  return { fairnessKey: fairnessKeyOf(req.userId), fairnessWeight: fairnessWeightOf(req.fairnessWeight) };
}
