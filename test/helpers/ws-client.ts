// A raw protocol client for the gateway, end-to-end and chaos tests: it speaks the wire format directly (not
// client/client.ts, whose AtelierClient hides frames on purpose), so the tests check the protocol itself, and it
// records every frame it receives for exact assertions. `next` takes frames in order, each at most once, while
// `waitFor` and `terminal` look at every frame received so far, whichever the test wants to express.
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import type { ServerFrame } from '../../core/protocol';

export type Frame = ServerFrame & Record<string, unknown>;

const TERMINAL_TYPES: readonly string[] = ['completed', 'failed', 'rejected'];

interface NextWaiter {
  readonly predicate: (f: Frame) => boolean;
  readonly resolve: (f: Frame) => void;
}

export class TestSocket {
  /** Every frame received, in arrival order. */
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Pending `next` calls; a new frame goes to the first one it matches. */
  private readonly nextWaiters: NextWaiter[] = [];
  /** Pending `waitFor` calls, re-run on every new frame. */
  private readonly searches = new Set<() => void>();
  /** Frames before this index were passed over or returned by `next`. */
  private cursor = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => this.onFrame(JSON.parse(data.toString()) as Frame));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  /** Connects with `apiKey` as a bearer token (none when null: tests put it in the URL or send none at all). */
  static async open(url: string, apiKey: string | null, options: ClientOptions = {}): Promise<TestSocket> {
    const headers: Record<string, string> = apiKey === null ? {} : { Authorization: `Bearer ${apiKey}` };
    const ws = new WebSocket(url, { ...options, headers });
    const socket = new TestSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    return socket;
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The next frame (after those already taken by `next`) that matches, waiting up to `timeoutMs`. */
  async next(predicate: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    for (; this.cursor < this.frames.length; this.cursor++) {
      const f = this.frames[this.cursor];
      if (f && predicate(f)) {
        this.cursor++;
        return f;
      }
    }
    return new Promise<Frame>((resolve, reject) => {
      const waiter: NextWaiter = {
        predicate,
        resolve: (f) => {
          clearTimeout(timer);
          this.cursor = this.frames.length;
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.nextWaiters.splice(this.nextWaiters.indexOf(waiter), 1);
        const received = JSON.stringify(this.frames).slice(0, 2000);
        reject(new Error(`No matching frame within ${timeoutMs} ms; received: ${received}`));
      }, timeoutMs);
      this.nextWaiters.push(waiter);
    });
  }

  /** The next frame about `requestId` of the given type. */
  nextFor<T extends ServerFrame['type']>(
    requestId: string,
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<ServerFrame, { type: T }>> {
    const matches = (f: Frame): boolean => f.type === type && 'requestId' in f && f.requestId === requestId;
    return this.next(matches, timeoutMs) as Promise<Extract<ServerFrame, { type: T }>>;
  }

  /** Resolves with the first frame (already received or future) that matches; `next`'s cursor is left alone. */
  waitFor(match: (f: Frame) => boolean, timeoutMs = 60_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const search = (): boolean => {
        const found = this.frames.find(match);
        if (!found) return false;
        this.searches.delete(search);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.searches.delete(search);
        const received = JSON.stringify(this.frames).slice(-2000);
        reject(new Error(`timed out after ${timeoutMs} ms; frames so far: ${received}`));
      }, timeoutMs);
      if (!search()) this.searches.add(search);
    });
  }

  /** Frames about one request, in arrival order. */
  framesFor(requestId: string): Frame[] {
    return this.frames.filter((f) => f.requestId === requestId);
  }

  /** Resolves with the request's terminal frame (completed, failed or rejected). */
  terminal(requestId: string, timeoutMs?: number): Promise<Frame> {
    return this.waitFor((f) => f.requestId === requestId && TERMINAL_TYPES.includes(f.type), timeoutMs);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.closed;
  }

  private onFrame(frame: Frame): void {
    this.frames.push(frame);
    const i = this.nextWaiters.findIndex((w) => w.predicate(frame));
    if (i >= 0) {
      const [waiter] = this.nextWaiters.splice(i, 1);
      waiter?.resolve(frame);
    }
    for (const search of this.searches) search();
  }
}

/** Connects with a bearer API key; the end-to-end and chaos tests' shorthand for `TestSocket.open`. */
export function connectTestSocket(url: string, apiKey: string): Promise<TestSocket> {
  return TestSocket.open(url, apiKey);
}
