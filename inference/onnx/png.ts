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
import { constants, deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
const COLOR_TYPE_RGB = 2;
const FILTER_SUB = 1;

// zlib.crc32 arrived in Node 20.15; package.json allows 20.3, so the PNG chunk checksum is computed here.
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * One image's CHW float planes (`planes` at `offset`: 3 x height x width, values in [-1, 1]) as PNG scanlines: a
 * filter byte per row, then the row's RGB bytes Sub-filtered (each byte minus the same channel of the pixel to its
 * left). Values map as diffusers does, `(x / 2 + 0.5).clamp(0, 1) * 255` rounded half to even like numpy's round:
 * a Uint8ClampedArray clamps and rounds that way on assignment. Each row is converted through a clamped view of the
 * output, then filtered in place from its right end, so the pixels are written once and nothing else is allocated.
 */
export function filteredScanlines(planes: Float32Array, offset: number, width: number, height: number): Uint8Array {
  const plane = width * height;
  const stride = 3 * width;
  const buffer = new ArrayBuffer((stride + 1) * height);
  const clamped = new Uint8ClampedArray(buffer);
  const out = new Uint8Array(buffer);
  for (let y = 0; y < height; y++) {
    const first = y * (stride + 1) + 1;
    out[first - 1] = FILTER_SUB;
    for (let x = 0, r = offset + y * width, o = first; x < width; x++, r++, o += 3) {
      clamped[o] = (planes[r] as number) * 127.5 + 127.5;
      clamped[o + 1] = (planes[r + plane] as number) * 127.5 + 127.5;
      clamped[o + 2] = (planes[r + 2 * plane] as number) * 127.5 + 127.5;
    }
    // Uint8Array stores wrap modulo 256, which is the filter's arithmetic.
    for (let i = first + stride - 1; i >= first + 3; i--) out[i] = (out[i] as number) - (out[i - 3] as number);
  }
  return out;
}

/** CHW float planes in [-1, 1] (3 x height x width from `offset`) to an RGB PNG. */
export function encodePlanesPng(planes: Float32Array, width: number, height: number, offset = 0): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per channel
  header[9] = COLOR_TYPE_RGB;
  const scanlines = filteredScanlines(planes, offset, width, height);
  const data = deflateSync(scanlines, { strategy: constants.Z_RLE });
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', data), chunk('IEND', new Uint8Array(0))]);
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
