// Entry point of a PNG encoder thread: RGBA pixels in, PNG bytes out, both transferred rather than copied.
import { parentPort } from 'node:worker_threads';
import { encodePng } from './png';

export interface EncodeRequest {
  readonly id: number;
  readonly rgba: Uint8Array;
  readonly width: number;
  readonly height: number;
}

export type EncodeReply =
  | { readonly id: number; readonly png: Uint8Array; readonly ms: number }
  | { readonly id: number; readonly error: string };

if (!parentPort) throw new Error('png-encoder-thread.ts runs only as a worker thread');
const port = parentPort;

port.on('message', (m: EncodeRequest) => {
  try {
    const started = performance.now();
    const png = encodePng(m.rgba, m.width, m.height);
    // pngjs may return a view of a pooled buffer: copy into an ArrayBuffer of its own to transfer it.
    const own = new Uint8Array(png);
    port.postMessage({ id: m.id, png: own, ms: performance.now() - started } satisfies EncodeReply, [own.buffer]);
  } catch (err) {
    port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) } satisfies EncodeReply);
  }
});
