// Image output: the VAE's [-1, 1] RGB float planes -> an 8-bit RGB PNG, in the PNG encoder threads
// (png-encoder-thread.ts), so an inference thread hands its planes over and starts its next pass instead of
// converting and compressing. PNG bytes are deterministic for the same planes and zlib version.
//
// Choices, measured on 512x512 images (a photo and a random-weight UNet's output) on one shared core:
// - RGB, not RGBA: Stable Diffusion's output is opaque; an alpha channel adds a third more bytes to filter and deflate.
// - One fixed Sub row filter: pngjs's adaptive filter tries all five on every row, about 3x the time for files a few
//   % smaller.
// - zlib's run-length strategy (Z_RLE; the level then hardly matters): 1.2-1.8x faster than the default strategy at
//   level 1, for a photo 4% larger (217 KB against 208 KB; level 6: 200 KB at 1.5x level 1's time, level 9 3x) and
//   for noise-like output 7% smaller. sharp (libvips) at level 1 was about twice as fast as pngjs but gave files 40%
//   larger, and at equal size no faster; it would add a native dependency for no gain.
// pngjs writes the file with those settings (RGB input, Sub filter, Z_RLE): the same bytes as a hand-written writer
// of the chunks, for about 1 ms more per 512x512 image on the encoder thread.
import { constants } from 'node:zlib';
import { PNG } from 'pngjs';

/**
 * One image's CHW float planes (`planes` at `offset`: 3 x height x width, values in [-1, 1]) as interleaved RGB bytes.
 * Values map as diffusers does, `(x / 2 + 0.5).clamp(0, 1) * 255` rounded half to even like numpy's round: a
 * Uint8ClampedArray clamps and rounds that way on assignment.
 */
function planesToRgb(planes: Float32Array, offset: number, width: number, height: number): Buffer {
  const plane = width * height;
  const rgb = new Uint8ClampedArray(3 * plane);
  for (let p = 0, r = offset, o = 0; p < plane; p++, r++, o += 3) {
    rgb[o] = (planes[r] as number) * 127.5 + 127.5;
    rgb[o + 1] = (planes[r + plane] as number) * 127.5 + 127.5;
    rgb[o + 2] = (planes[r + 2 * plane] as number) * 127.5 + 127.5;
  }
  return Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
}

/** CHW float planes in [-1, 1] (3 x height x width from `offset`) to an RGB PNG. */
export function encodePlanesPng(planes: Float32Array, width: number, height: number, offset = 0): Buffer {
  const png = new PNG({ width, height });
  png.data = planesToRgb(planes, offset, width, height);
  return PNG.sync.write(png, {
    colorType: 2,
    inputColorType: 2,
    filterType: 1,
    deflateStrategy: constants.Z_RLE,
    deflateLevel: constants.Z_DEFAULT_COMPRESSION,
  });
}

/**
 * RGBA -> PNG with pngjs and its fixed Sub row filter: the simulated GPU backend's images (simulated-image.ts), whose
 * bytes tests and load runs already know.
 */
export function encodePng(rgba: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 6 });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png, { filterType: 1 });
}
