// Entry point of a PNG encoder thread: an image's float planes in, PNG bytes out, both transferred rather than
// copied. Converting the planes to bytes happens here too, so the inference thread does no per-pixel work at all.
import { parentPort } from 'node:worker_threads';
import { encodePlanesPng } from './png';

export interface EncodeRequest {
  readonly id: number;
  /** 3 x height x width floats in [-1, 1], the VAE's output for one image. */
  readonly planes: Float32Array;
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
    const png = encodePlanesPng(m.planes, m.width, m.height);
    // Buffer.concat may return a view of a pooled buffer: copy into an ArrayBuffer of its own to transfer it.
    const own = new Uint8Array(png);
    port.postMessage({ id: m.id, png: own, ms: performance.now() - started } satisfies EncodeReply, [own.buffer]);
  } catch (err) {
    port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) } satisfies EncodeReply);
  }
});
