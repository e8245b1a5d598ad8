// Per-request bookkeeping shared by both kinds of load (gateway requests and floor workflows): what happened to
// one request and when, fed frame by frame. Kept free of I/O so the unit test can drive it with made-up frames.

/** Times are performance.now() milliseconds of the bench process. */
export interface RequestRecord {
  /** The request's id: the gateway requestId, or the floor workflow id. */
  readonly id: string;
  readonly index: number;
  /** Target rate of the arrival this request belongs to (requests/s), null for a burst. */
  readonly rate: number | null;
  sentAt?: number;
  acceptedAt?: number;
  /** First `status: safety_check` (Atelier only): the workflow's first task is running, on the control worker. */
  safetyCheckAt?: number;
  /** First `status: generating` (Atelier only): a GPU worker took the request's task. */
  generatingAt?: number;
  /** First `progress` frame (Atelier only): the device has run the request's first step. */
  progressAt?: number;
  /** When the bench sent a `cancel` for it (the mixed profile ends its relax backlog so). */
  cancelSentAt?: number;
  /** The code of a `rejected` frame that answered the cancel; the request itself goes on to its own terminal. */
  cancelRefusal?: string;
  /** First terminal event: completed, failed, rejected, or the connection dropped under it. */
  terminalAt?: number;
  outcome?: 'completed' | 'failed' | 'rejected' | 'dropped';
  /** failed.code, `rejected:<code>`, `connection_closed:<close code>` or the floor's error name. */
  failureCode?: string;
  /** A `rejected` frame's retryAfterMs, when it carried a number (the spike profile checks it is there). */
  retryAfterMs?: number;
  /** A `rejected` frame's message: where one code has several causes, it tells them apart. */
  rejectMessage?: string;
  workflowId?: string;
  /** Terminal frames seen (completed/failed/rejected); more than one is a duplicate. */
  terminals: number;
  readonly seqs: Set<number>;
  /** Frames whose `seq` this request had already received. */
  duplicateSeqs: number;
}

export function newRecord(id: string, index: number, rate: number | null = null): RequestRecord {
  return { id, index, rate, terminals: 0, seqs: new Set(), duplicateSeqs: 0 };
}

/** The fields of a server frame that bookkeeping reads; everything else is ignored. */
export interface FrameFields {
  readonly type?: unknown;
  readonly seq?: unknown;
  readonly status?: unknown;
  readonly code?: unknown;
  readonly workflowId?: unknown;
  readonly retryAfterMs?: unknown;
  readonly message?: unknown;
  /** Set on a live queue update, which repeats the newest seq by design (README, Protocol). */
  readonly queuePosition?: unknown;
}

/** Applies one gateway frame about this request, received at `now`. */
export function applyFrame(record: RequestRecord, frame: FrameFields, now: number): void {
  if (typeof frame.seq === 'number' && frame.queuePosition === undefined) {
    if (record.seqs.has(frame.seq)) record.duplicateSeqs += 1;
    else record.seqs.add(frame.seq);
  }
  switch (frame.type) {
    case 'accepted':
      record.acceptedAt ??= now;
      if (typeof frame.workflowId === 'string') record.workflowId ??= frame.workflowId;
      return;
    case 'status':
      if (frame.status === 'generating') record.generatingAt ??= now;
      if (frame.status === 'safety_check') record.safetyCheckAt ??= now;
      return;
    case 'progress':
      record.progressAt ??= now;
      return;
    case 'completed':
      settle(record, 'completed', undefined, now);
      return;
    case 'failed':
      settle(record, 'failed', String(frame.code ?? 'UNKNOWN'), now);
      return;
    case 'rejected':
      // After `accepted`, a rejection can only answer the cancel (RATE_LIMITED, UNKNOWN_REQUEST when it had just
      // ended): it is no terminal of the request, which ends with its own.
      if (record.cancelSentAt !== undefined && record.acceptedAt !== undefined) {
        record.cancelRefusal ??= String(frame.code ?? 'UNKNOWN');
        return;
      }
      if (record.outcome === undefined) {
        if (typeof frame.retryAfterMs === 'number') record.retryAfterMs = frame.retryAfterMs;
        if (typeof frame.message === 'string') record.rejectMessage = frame.message;
      }
      settle(record, 'rejected', `rejected:${String(frame.code ?? 'UNKNOWN')}`, now);
      return;
  }
}

/** Records a terminal outcome; only the first one counts, later ones are duplicates. */
export function settle(
  record: RequestRecord,
  outcome: NonNullable<RequestRecord['outcome']>,
  failureCode: string | undefined,
  now: number,
): void {
  record.terminals += 1;
  if (record.outcome !== undefined) return;
  record.outcome = outcome;
  record.terminalAt = now;
  if (failureCode !== undefined) record.failureCode = failureCode;
}

/** The connection under a request closed before its terminal event; it is not counted as a terminal frame. */
export function markDropped(record: RequestRecord, closeCode: number, now: number): void {
  if (record.outcome !== undefined) return;
  record.outcome = 'dropped';
  record.terminalAt = now;
  record.failureCode = `connection_closed:${closeCode}`;
}

export function isSettled(record: RequestRecord): boolean {
  return record.outcome !== undefined;
}

export type Verdict = 'completed' | 'failed' | 'lost' | 'unsent';

/** What a request counts as once its segment is over: a terminal after the timeout is as lost as none. */
export function verdict(record: RequestRecord, timeoutMs: number): Verdict {
  if (record.sentAt === undefined) return 'unsent';
  if (record.outcome === undefined || record.terminalAt === undefined) return 'lost';
  if (record.terminalAt - record.sentAt > timeoutMs) return 'lost';
  return record.outcome === 'completed' ? 'completed' : 'failed';
}
