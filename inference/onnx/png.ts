// Image output: the VAE's [-1, 1] RGB planes -> 8-bit RGBA (in the inference thread, a few ms per 512x512 image),
// then PNG (pngjs, in the PNG encoder threads, so an accelerator's thread starts its next pass instead of
// compressing). PNG bytes are deterministic for the same pixels and zlib version.
import { PNG } from 'pngjs';

/**
 * One image from CHW float planes (`data` at `offset`, 3 x height x width) to interleaved RGBA, mapping [-1, 1] to
 * [0, 255] as diffusers does (`(x / 2 + 0.5).clamp(0, 1) * 255`, rounded half to even like numpy's round): a
 * Uint8ClampedArray clamps and rounds that way on assignment.
 */
export function toRgba(data: Float32Array, offset: number, width: number, height: number): Uint8Array {
  const plane = width * height;
  const out = new Uint8ClampedArray(plane * 4);
  const r = offset;
  const g = offset + plane;
  const b = offset + 2 * plane;
  for (let p = 0, o = 0; p < plane; p++, o += 4) {
    out[o] = (data[r + p] as number) * 127.5 + 127.5;
    out[o + 1] = (data[g + p] as number) * 127.5 + 127.5;
    out[o + 2] = (data[b + p] as number) * 127.5 + 127.5;
    out[o + 3] = 255;
  }
  return new Uint8Array(out.buffer);
}

/**
 * RGBA -> PNG. The fixed Sub row filter costs about a third of pngjs's default adaptive filter (which tries all five
 * filters on every row) for files ~1-3% larger; encoding is on every request's critical path.
 */
export function encodePng(rgba: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 6 });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png, { filterType: 1 });
}
