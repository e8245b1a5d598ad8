// When each event of a request reached its client. TestSocket keeps frames in order but not their arrival times,
// which the experiments that measure waits (queue_pressure: accepted -> generating per tier) and order
// (safety_outage: nothing generated while the screen was down) need.
import type { RawData } from 'ws';
import type { TestSocket } from '../helpers/ws-client';

/** An event's name: the frame type, or `status:<status>` for a status frame (`status:generating`). */
export type EventName = string;

export class FrameTimes {
  private readonly first = new Map<string, Map<EventName, number>>();

  /** Starts recording the socket's frames from now on; earlier frames have no time. */
  constructor(socket: TestSocket) {
    socket.ws.on('message', (data: RawData) => {
      const frame = JSON.parse(data.toString()) as { type?: unknown; status?: unknown; requestId?: unknown };
      if (typeof frame.requestId !== 'string' || typeof frame.type !== 'string') return;
      const name = frame.type === 'status' ? `status:${String(frame.status)}` : frame.type;
      const events = this.first.get(frame.requestId) ?? new Map<EventName, number>();
      // The first arrival: a replay after a re-attach repeats frames, not events.
      if (!events.has(name)) events.set(name, Date.now());
      this.first.set(frame.requestId, events);
    });
  }

  /** When `event` first reached the client for `requestId`, ms since epoch; undefined if it has not. */
  at(requestId: string, event: EventName): number | undefined {
    return this.first.get(requestId)?.get(event);
  }

  /** `to` minus `from` for the request, ms; throws naming the request when either event is missing. */
  between(requestId: string, from: EventName, to: EventName): number {
    const start = this.at(requestId, from);
    const end = this.at(requestId, to);
    if (start === undefined || end === undefined)
      throw new Error(`${requestId}: no ${start === undefined ? from : to} event was received`);
    return end - start;
  }
}

/** Count, median and maximum of some durations, ms (rounded), for printing and comparing. */
export interface WaitFigures {
  readonly n: number;
  readonly p50: number;
  readonly max: number;
}

export function waitFigures(values: readonly number[]): WaitFigures {
  const sorted = [...values].sort((a, b) => a - b);
  const p50 = sorted.length === 0 ? 0 : (sorted[Math.floor((sorted.length - 1) / 2)] ?? 0);
  return { n: sorted.length, p50: Math.round(p50), max: Math.round(sorted.at(-1) ?? 0) };
}
