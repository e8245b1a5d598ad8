// PNG encoding of decoded images: the VAE's [-1, 1] RGB planes -> 8-bit RGBA -> PNG (pngjs, deterministic for the
// same pixels and zlib version).
import { PNG } from 'pngjs';

/**
 * Converts one image from CHW float planes (`data` at `offset`, 3 x height x width) to a PNG, mapping [-1, 1] to
 * [0, 255] with rounding and clipping as diffusers' `(image / 2 + 0.5).clamp(0, 1)` then `round(x * 255)` does.
 */
export function encodeImagePng(data: Float32Array, offset: number, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 6 });
  const plane = width * height;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (data[offset + c * plane + p] as number) / 2 + 0.5;
      png.data[p * 4 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    png.data[p * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}
