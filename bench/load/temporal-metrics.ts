// The Temporal server's own request counters, read from its Prometheus endpoint (stack.json temporal.metricsUrl):
// how many heartbeats, workflow-task and activity-task completions the server handled per request. The dev
// server publishes counters about once a second, so a reading waits until they stop moving.
import { setTimeout as sleep } from 'node:timers/promises';

/** The server's per-RPC counter, labelled by operation, service_name and namespace. */
export const REQUEST_COUNTER = 'service_requests';
/** Counted at the frontend, where each worker call arrives once (history sees most of them again). */
export const COUNTING_SERVICE = 'frontend';
export const TRACKED_OPERATIONS = [
  'RecordActivityTaskHeartbeat',
  'RespondWorkflowTaskCompleted',
  'RespondActivityTaskCompleted',
] as const;
export type TrackedOperation = (typeof TRACKED_OPERATIONS)[number];
export type OperationCounts = Record<TrackedOperation, number>;

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text exposition format (0.0.4): comments skipped, labels unescaped, optional timestamp. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseSampleLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseSampleLine(line: string): Sample | undefined {
  const nameMatch = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line);
  if (!nameMatch) return undefined;
  const name = nameMatch[0];
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    const end = parseLabels(rest, labels);
    if (end < 0) return undefined;
    rest = rest.slice(end);
  }
  const valueText = rest.trim().split(/\s+/)[0] ?? '';
  const value = parseValue(valueText);
  return value === undefined ? undefined : { name, labels, value };
}

/** Fills `labels` from `{a="x",b="y"}` at the start of `text`; returns the index after `}`, or -1 if malformed. */
function parseLabels(text: string, labels: Record<string, string>): number {
  let i = 1;
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i += 1;
    if (text[i] === '}') return i + 1;
    const key = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (!key || text[i + key[0].length] !== '=' || text[i + key[0].length + 1] !== '"') return -1;
    i += key[0].length + 2;
    let value = '';
    for (; i < text.length && text[i] !== '"'; i += 1) {
      const c = text[i];
      if (c === '\\') {
        i += 1;
        const escaped = text[i];
        value += escaped === 'n' ? '\n' : (escaped ?? '');
      } else {
        value += c;
      }
    }
    if (i >= text.length) return -1;
    labels[key[0]] = value;
    i += 1;
  }
}

function parseValue(text: string): number | undefined {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const value = Number(text);
  return text === '' || Number.isNaN(value) ? undefined : value;
}

/**
 * The tracked operations' counts for one namespace, or null when the server exports no request counter at all
 * (then the metric has another name there and zeros would mislead). An operation never called yet has no series,
 * which is a true zero.
 */
export function operationCounts(samples: readonly Sample[], namespace: string): OperationCounts | null {
  const counter = samples.filter((s) => s.name === REQUEST_COUNTER);
  if (counter.length === 0) return null;
  const counts = Object.fromEntries(TRACKED_OPERATIONS.map((op) => [op, 0])) as OperationCounts;
  for (const s of counter) {
    const op = s.labels.operation as TrackedOperation;
    if (s.labels.service_name !== COUNTING_SERVICE || s.labels.namespace !== namespace) continue;
    if ((TRACKED_OPERATIONS as readonly string[]).includes(op)) counts[op] += s.value;
  }
  return counts;
}

export async function scrape(url: string): Promise<Sample[] | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return null;
    return parsePrometheusText(await res.text());
  } catch {
    return null;
  }
}

/** Reads the counters until two readings `gapMs` apart agree (the server flushes them about every second). */
export async function settledCounts(
  url: string | null,
  namespace: string,
  { gapMs = 1_300, maxWaitMs = 10_000 } = {},
): Promise<OperationCounts | null> {
  if (url === null) return null;
  const deadline = Date.now() + maxWaitMs;
  let last = await scrape(url).then((s) => (s ? operationCounts(s, namespace) : null));
  while (last !== null && Date.now() < deadline) {
    await sleep(gapMs);
    const now = await scrape(url).then((s) => (s ? operationCounts(s, namespace) : null));
    if (now === null) return null;
    if (TRACKED_OPERATIONS.every((op) => now[op] === last?.[op])) return now;
    last = now;
  }
  return last;
}

/** Per completed request: the counter deltas divided by `completed`; null where unknown. */
export function countsPerRequest(
  before: OperationCounts | null,
  after: OperationCounts | null,
  completed: number,
): Record<TrackedOperation, number | null> {
  const per = (op: TrackedOperation): number | null =>
    before === null || after === null || completed === 0
      ? null
      : Math.round(((after[op] - before[op]) / completed) * 1000) / 1000;
  return Object.fromEntries(TRACKED_OPERATIONS.map((op) => [op, per(op)])) as Record<TrackedOperation, number | null>;
}
