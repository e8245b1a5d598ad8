// The simulated clients: raw WebSocket connections to the gateway speaking protocol v1 on the wire (not
// client/client.ts, which drops replayed frames by design: here every duplicate must be seen and counted).
// Connections never reconnect during a run: a connection that drops fails the requests still open on it.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { applyFrame, isSettled, markDropped, type FrameFields, type RequestRecord } from './records';

interface Connection {
  readonly ws: WebSocket;
  readonly user: number;
  /** Requests sent on this connection that have no terminal event yet. */
  readonly open: Set<RequestRecord>;
  closeCode?: number;
}

/** Frames the bookkeeping could not attach to a request (snake_case: they go into the JSON line as they are). */
export interface StrayFrames {
  /** `error` frames by code (the gateway could not read something we sent). */
  errors: Record<string, number>;
  /** Frames naming a requestId this run never sent. */
  unknown_request: number;
  unreadable: number;
}

const OPEN_TIMEOUT_MS = 15_000;

export class GatewayClients {
  readonly strays: StrayFrames = { errors: {}, unknown_request: 0, unreadable: 0 };
  /** Every request sent so far, by requestId, kept after its segment so late duplicates are still counted. */
  private readonly records = new Map<string, RequestRecord>();
  private readonly connections: Connection[] = [];
  private next = 0;
  private closing = false;

  /** Opens `connections` sockets, connection i authenticated as user i mod keys. */
  static async open(url: string, apiKeys: readonly string[], connections: number): Promise<GatewayClients> {
    const clients = new GatewayClients();
    try {
      for (let i = 0; i < connections; i++) {
        const user = i % apiKeys.length;
        clients.connections.push(await clients.connect(url, apiKeys[user] ?? '', user));
      }
    } catch (err) {
      await clients.close();
      throw err;
    }
    return clients;
  }

  get users(): number {
    return new Set(this.connections.map((c) => c.user)).size;
  }

  /** Sends a `generate` frame for `record` on the next connection in turn. */
  submit(record: RequestRecord, frame: Readonly<Record<string, unknown>>): void {
    const conn = this.connections[this.next++ % this.connections.length];
    if (!conn) throw new Error('no connections');
    this.records.set(record.id, record);
    const text = JSON.stringify(frame);
    record.sentAt = performance.now();
    if (conn.closeCode !== undefined || conn.ws.readyState !== WebSocket.OPEN) {
      markDropped(record, conn.closeCode ?? 1006, performance.now());
      return;
    }
    conn.open.add(record);
    conn.ws.send(text);
  }

  /**
   * Sends a `cancel` for an open request on the connection it was sent on (its terminal frame comes there); false when
   * it has ended or its connection is gone.
   */
  cancel(record: RequestRecord): boolean {
    const conn = this.connections.find((c) => c.open.has(record));
    if (!conn || conn.ws.readyState !== WebSocket.OPEN) return false;
    record.cancelSentAt ??= performance.now();
    conn.ws.send(JSON.stringify({ type: 'cancel', requestId: record.id }));
    return true;
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.connections.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.ws.readyState === WebSocket.CLOSED) return resolve();
            c.ws.once('close', () => resolve());
            c.ws.close(1000, 'bench done');
            setTimeout(() => {
              c.ws.terminate();
              resolve();
            }, 2_000).unref();
          }),
      ),
    );
  }

  private connect(url: string, key: string, user: number): Promise<Connection> {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${key}` }, perMessageDeflate: false });
    const conn: Connection = { ws, user, open: new Set() };
    ws.on('message', (data, isBinary) => this.onMessage(conn, data, isBinary));
    ws.on('close', (code) => this.onClose(conn, code));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`no WebSocket connection to ${url} in ${OPEN_TIMEOUT_MS} ms`)),
        OPEN_TIMEOUT_MS,
      );
      const fail = (err: Error): void => {
        clearTimeout(timer);
        ws.terminate();
        reject(err);
      };
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(conn);
      });
      ws.once('unexpected-response', (_req, res) =>
        fail(new Error(`${url} answered HTTP ${res.statusCode} to user ${user}'s key (is it in ATELIER_API_KEYS?)`)),
      );
      ws.once('error', (err) => fail(err));
    });
  }

  private onMessage(conn: Connection, data: WebSocket.RawData, isBinary: boolean): void {
    const now = performance.now();
    let frame: FrameFields & { requestId?: unknown };
    try {
      if (isBinary) throw new Error('binary');
      frame = JSON.parse(rawText(data)) as typeof frame;
    } catch {
      this.strays.unreadable += 1;
      return;
    }
    if (frame.type === 'error') {
      const code = String(frame.code);
      this.strays.errors[code] = (this.strays.errors[code] ?? 0) + 1;
      return;
    }
    const record = typeof frame.requestId === 'string' ? this.records.get(frame.requestId) : undefined;
    if (!record) {
      this.strays.unknown_request += 1;
      return;
    }
    applyFrame(record, frame, now);
    if (isSettled(record)) conn.open.delete(record);
  }

  private onClose(conn: Connection, code: number): void {
    conn.closeCode = code;
    if (this.closing) return;
    const now = performance.now();
    for (const record of conn.open) markDropped(record, code, now);
    conn.open.clear();
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}
