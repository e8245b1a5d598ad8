// The spike profile's figures and checks, from its request records and the probes' samples (spike-probes.ts). Pure,
// so the unit test drives it with made-up records. Field names are the JSON line's (snake_case).
import { REJECT_CODES } from '../../core/errors';
import { verdict, type RequestRecord } from './records';
import { percentile } from './stats';

/**
 * Rejection codes whose documentation (core/errors.ts, the README's table) promises a `retryAfterMs`: read from the
 * descriptions themselves, so a code added there with the promise is checked here without a second list to keep.
 */
export const RETRY_AFTER_CODES: readonly string[] = Object.entries(REJECT_CODES)
  .filter(([, meaning]) => meaning.includes('retryAfterMs'))
  .map(([code]) => code);

export interface RejectionFigures {
  count: number;
  /** Rejections of this code whose frame carried a numeric retryAfterMs. */
  with_retry_after: number;
  /** The spread matters: the gateway computes it from the drain rate, so it should not be one constant. */
  retry_after_min_ms: number | null;
  retry_after_p50_ms: number | null;
  retry_after_max_ms: number | null;
}

export interface OutcomeFigures {
  sent: number;
  accepted: number;
  completed: number;
  /** Accepted and ended without images, plus requests whose connection dropped: by code. */
  failed: number;
  failed_by_code: Record<string, number>;
  rejected: number;
  rejected_by_code: Record<string, RejectionFigures>;
  /** Rejections of a code that promises retryAfterMs, without one: a defect. */
  rejections_missing_retry_after: number;
  /** Rejections whose code is not documented, or documents no retryAfterMs (not shedding): a defect here. */
  rejections_not_shedding: number;
  /** Those rejections by code and message (SERVICE_UNAVAILABLE has one message per dependency that failed). */
  not_shedding_messages: Record<string, Record<string, number>>;
  /** Sent and without a terminal frame within the wait (accepted or not): must be 0. */
  lost: number;
  /** Of the lost, those never answered at all (no accepted, no rejected). */
  unanswered: number;
  duplicates: number;
  duplicate_seqs: number;
}

const rounded = (x: number | null): number | null => (x === null ? null : Math.round(x));

function rejectionCode(r: RequestRecord): string {
  return (r.failureCode ?? 'rejected:UNKNOWN').replace(/^rejected:/, '');
}

function rejections(records: readonly RequestRecord[]): Record<string, RejectionFigures> {
  const byCode = new Map<string, number[]>();
  const counts = new Map<string, number>();
  for (const r of records) {
    const code = rejectionCode(r);
    counts.set(code, (counts.get(code) ?? 0) + 1);
    const waits = byCode.get(code) ?? [];
    if (r.retryAfterMs !== undefined) waits.push(r.retryAfterMs);
    byCode.set(code, waits);
  }
  const out: Record<string, RejectionFigures> = {};
  for (const [code, count] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
    const waits = byCode.get(code) ?? [];
    out[code] = {
      count,
      with_retry_after: waits.length,
      retry_after_min_ms: rounded(percentile(waits, 0)),
      retry_after_p50_ms: rounded(percentile(waits, 50)),
      retry_after_max_ms: rounded(percentile(waits, 100)),
    };
  }
  return out;
}

function messagesByCode(records: readonly RequestRecord[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of records) {
    const messages = (out[rejectionCode(r)] ??= {});
    const message = r.rejectMessage ?? '(no message)';
    messages[message] = (messages[message] ?? 0) + 1;
  }
  return out;
}

/** What happened to every request sent; a request with no terminal within `waitMs` of its send is lost. */
export function outcomeFigures(records: readonly RequestRecord[], waitMs: number): OutcomeFigures {
  const sent = records.filter((r) => r.sentAt !== undefined);
  const lost = sent.filter((r) => verdict(r, waitMs) === 'lost');
  const ended = sent.filter((r) => verdict(r, waitMs) !== 'lost');
  const rejected = ended.filter((r) => r.outcome === 'rejected');
  const failed = ended.filter((r) => r.outcome === 'failed' || r.outcome === 'dropped');
  const failedByCode: Record<string, number> = {};
  for (const r of failed)
    failedByCode[r.failureCode ?? 'UNKNOWN'] = (failedByCode[r.failureCode ?? 'UNKNOWN'] ?? 0) + 1;
  const byCode = rejections(rejected);
  const promised = (code: string): boolean => RETRY_AFTER_CODES.includes(code);
  return {
    sent: sent.length,
    accepted: sent.filter((r) => r.acceptedAt !== undefined).length,
    completed: ended.filter((r) => r.outcome === 'completed').length,
    failed: failed.length,
    failed_by_code: failedByCode,
    rejected: rejected.length,
    rejected_by_code: byCode,
    rejections_missing_retry_after: Object.entries(byCode)
      .filter(([code]) => promised(code))
      .reduce((n, [, f]) => n + f.count - f.with_retry_after, 0),
    rejections_not_shedding: Object.entries(byCode)
      .filter(([code]) => !promised(code))
      .reduce((n, [, f]) => n + f.count, 0),
    not_shedding_messages: messagesByCode(rejected.filter((r) => !promised(rejectionCode(r)))),
    lost: lost.length,
    unanswered: lost.filter((r) => r.acceptedAt === undefined).length,
    duplicates: sent.reduce((n, r) => n + Math.max(0, r.terminals - 1), 0),
    duplicate_seqs: sent.reduce((n, r) => n + r.duplicateSeqs, 0),
  };
}

/** Requests actually sent per second, first send to last: whether the generator kept up with the offered rate. */
export function sendRate(records: readonly RequestRecord[]): number | null {
  const times = records.flatMap((r) => (r.sentAt === undefined ? [] : [r.sentAt]));
  if (times.length < 2) return null;
  const spanS = (Math.max(...times) - Math.min(...times)) / 1000;
  return spanS > 0 ? Math.round(((times.length - 1) / spanS) * 10) / 10 : null;
}

export interface WaitFigures {
  accepted: number;
  /** Accepted requests that ended without ever generating (NO_CAPACITY, TIMED_OUT): their wait is counted too. */
  never_started: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

/**
 * Queue wait by tier: from `accepted` to the first `generating` status. An accepted request that ended without one
 * waited all that time in a queue, so its wait to the terminal counts (leaving it out would flatter the tier); a
 * lost one has no end and is counted as lost instead.
 */
export function waitsByTier(
  records: readonly RequestRecord[],
  tierOf: (id: string) => string | undefined,
): Record<string, WaitFigures> {
  const waits = new Map<string, { values: number[]; accepted: number; neverStarted: number }>();
  for (const r of records) {
    const tier = tierOf(r.id);
    if (tier === undefined || r.acceptedAt === undefined) continue;
    const entry = waits.get(tier) ?? { values: [], accepted: 0, neverStarted: 0 };
    waits.set(tier, entry);
    entry.accepted += 1;
    const started = r.generatingAt ?? r.terminalAt;
    if (started === undefined) continue;
    if (r.generatingAt === undefined) entry.neverStarted += 1;
    entry.values.push(started - r.acceptedAt);
  }
  const out: Record<string, WaitFigures> = {};
  for (const [tier, { values, accepted, neverStarted }] of [...waits].sort(([a], [b]) => a.localeCompare(b))) {
    out[tier] = {
      accepted,
      never_started: neverStarted,
      p50_ms: rounded(percentile(values, 50)),
      p99_ms: rounded(percentile(values, 99)),
      max_ms: rounded(percentile(values, 100)),
    };
  }
  return out;
}

/** Production defaults of the gateway's caps (README "Admission"; seed 003's 50 per user). */
export const DEFAULT_MAX_IN_FLIGHT_PER_USER = 50;
export const DEFAULT_MAX_IN_FLIGHT = 10_000;

export interface InFlightBound {
  /** Requests the gateway lets be in flight at once for these users: no queue can hold more tasks than that. */
  bound: number;
  per_user: number;
  deployment: number;
  source: 'users x per-user cap' | 'deployment cap';
}

/**
 * The bound the queues are checked against. Each request in flight has at most one task waiting in a task queue at a
 * time (its workflow task, or its current activity's), and the gateway admits at most the per-user cap for each of
 * `users` and at most the deployment's cap in all, so the summed backlog may never exceed the smaller of the two.
 */
export function inFlightBound(env: Readonly<Record<string, string>>, users: number): InFlightBound {
  const setting = (name: string, fallback: number): number => {
    const value = Number(env[name]);
    return env[name] !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
  };
  const perUser = setting('ATELIER_MAX_IN_FLIGHT_PER_USER', DEFAULT_MAX_IN_FLIGHT_PER_USER);
  const deployment = setting('ATELIER_MAX_IN_FLIGHT', DEFAULT_MAX_IN_FLIGHT);
  const byUsers = perUser * users;
  return byUsers <= deployment
    ? { bound: byUsers, per_user: perUser, deployment, source: 'users x per-user cap' }
    : { bound: deployment, per_user: perUser, deployment, source: 'deployment cap' };
}
