// Events that activities publish about the work they do: the status a request enters when its work really starts
// (safety screen, a GPU worker taking it, storage), and the `completed` terminal once its images are stored. Each
// is published with the same dedupe key the workflow would use, so an activity retry, a replayed workflow or an
// older workflow that still publishes them itself never doubles an event.
//
// Statuses are advisory: if Redis does not answer within a short bound, the activity logs it and goes on with the
// work instead of holding the request up (the client still gets every later event and the terminal). The terminal
// is not advisory: a storage activity that could not publish it says so, and the workflow publishes it instead,
// retrying for as long as it takes.
import { Context } from '@temporalio/activity';
import type { RequestEvent } from '../core/events';
import type { GpuType } from '../core/gpu';
import type { GenerationStatus } from '../core/status';
import type { RequestEventPublisher } from '../runtime/event-log';
import { currentEventLogId } from './notification';

/** How long an activity waits for Redis to record a status before it carries on without it, ms. */
const STATUS_PUBLISH_BOUND_MS = 2_000;
/** How long the storage activity waits for Redis to record the terminal before leaving it to the workflow, ms. */
const TERMINAL_PUBLISH_BOUND_MS = 5_000;

/** Publishes `event` to the current workflow's log within `boundMs`; false (and a warning) if it did not. */
async function publishWithin(
  eventLog: RequestEventPublisher,
  event: RequestEvent,
  dedupeKey: string,
  boundMs: number,
): Promise<boolean> {
  const ctx = Context.current();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${boundMs} ms`)), boundMs);
  });
  try {
    await Promise.race([eventLog.publish(currentEventLogId(), event, dedupeKey), timeout]);
    return true;
  } catch (err) {
    ctx.log.warn('Request event not published', { dedupeKey, error: err instanceof Error ? err.message : String(err) });
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** The request entered `status` (published once per request, whoever publishes it first). */
export function announceStatus(
  eventLog: RequestEventPublisher,
  status: GenerationStatus,
  gpuType?: GpuType,
): Promise<boolean> {
  const event: RequestEvent = gpuType ? { type: 'status', status, gpuType } : { type: 'status', status };
  return publishWithin(eventLog, event, `status:${status}`, STATUS_PUBLISH_BOUND_MS);
}

/** The request's one terminal event; true once Redis has it (or already had it). */
export function announceTerminal(eventLog: RequestEventPublisher, event: RequestEvent): Promise<boolean> {
  return publishWithin(eventLog, event, 'terminal', TERMINAL_PUBLISH_BOUND_MS);
}
