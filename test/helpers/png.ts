// Decodes a PNG fully (checksums and all) so tests prove an image is real, not just that bytes came back.
import { PNG } from 'pngjs';

export function decodePng(body: Buffer): { width: number; height: number; data: Buffer } {
  const png = PNG.sync.read(body);
  return { width: png.width, height: png.height, data: png.data };
}
