// Entry point of a render thread of the simulated GPU backend: (size, seed, prompt) in, the PNG of
// renderSimulatedImage out, transferred rather than copied. Drawing and encoding a 4096x4096 image takes seconds,
// which the GPU worker's event loop (heartbeats, polls, cancellation) cannot give up.
import { parentPort } from 'node:worker_threads';
import { renderSimulatedImage } from './simulated-image';

export interface RenderRequest {
  readonly id: number;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly prompt: string;
}

export type RenderReply =
  { readonly id: number; readonly png: Uint8Array } | { readonly id: number; readonly error: string };

if (!parentPort) throw new Error('simulated-render-thread.ts runs only as a worker thread');
const port = parentPort;

port.on('message', (m: RenderRequest) => {
  try {
    const png = renderSimulatedImage(m.width, m.height, m.seed, m.prompt);
    // Small PNGs are views of Buffer's shared pool, which must not be handed over: those few KiB are copied.
    const owned = png.byteOffset === 0 && png.byteLength === png.buffer.byteLength;
    const out = owned ? new Uint8Array(png.buffer as ArrayBuffer) : new Uint8Array(png);
    port.postMessage({ id: m.id, png: out } satisfies RenderReply, [out.buffer]);
  } catch (err) {
    port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) } satisfies RenderReply);
  }
});
