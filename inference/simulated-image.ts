// The simulated GPU backend's images: a deterministic PNG of any size from (seed, prompt). The backend draws them in
// its render threads (simulated-render-thread.ts) and tests call this directly, so both get the same bytes.
import { encodePng } from './onnx/png';

/** 32-bit FNV-1a: a stable, dependency-free hash of the prompt to mix into the seed. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast and good enough to pick colours and shapes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number): number => (n + h * 12) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number): number => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [f(0) * 255, f(8) * 255, f(4) * 255];
}

/**
 * A PNG of width x height: a linear gradient between two colours at a random angle, with soft-edged discs
 * blended over it. Same (size, seed, prompt) -> same bytes.
 */
export function renderSimulatedImage(width: number, height: number, seed: number, prompt: string): Buffer {
  const random = prng(seed ^ fnv1a(prompt));
  const baseHue = random();
  const from = hslToRgb(baseHue, 0.55 + 0.35 * random(), 0.25 + 0.2 * random());
  const to = hslToRgb((baseHue + 0.25 + 0.5 * random()) % 1, 0.5 + 0.4 * random(), 0.55 + 0.3 * random());
  const angle = random() * Math.PI * 2;
  const dx = Math.cos(angle);
  const dy = Math.sin(angle);
  const scale = Math.max(width, height);
  const discs = Array.from({ length: 3 + Math.floor(random() * 5) }, () => ({
    cx: random() * width,
    cy: random() * height,
    r: (0.08 + 0.25 * random()) * scale,
    color: hslToRgb(random(), 0.6 + 0.4 * random(), 0.4 + 0.4 * random()),
    opacity: 0.35 + 0.5 * random(),
  }));

  // The simulated GPU's work is the sleep that models it; drawing the result should cost the host little, since in a
  // load test it shares the CPU with the stack being measured. So each row only visits the discs that cross it, and
  // the PNG gets the fixed Sub filter (inference/onnx/png.ts) instead of pngjs's five-filter search.
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    const rowDiscs = discs.filter((d) => Math.abs(y - d.cy) < d.r);
    for (let x = 0; x < width; x++) {
      // Gradient position in [0, 1] along the angle, centred on the image.
      const t = Math.min(1, Math.max(0, 0.5 + ((x - width / 2) * dx + (y - height / 2) * dy) / scale));
      let r = from[0] + (to[0] - from[0]) * t;
      let g = from[1] + (to[1] - from[1]) * t;
      let b = from[2] + (to[2] - from[2]) * t;
      for (const d of rowDiscs) {
        const ddx = x - d.cx;
        const ddy = y - d.cy;
        const dist2 = (ddx * ddx + ddy * ddy) / (d.r * d.r);
        if (dist2 >= 1) continue;
        // Smooth falloff: opaque centre, feathered rim.
        const w = d.opacity * (1 - dist2) * (1 - dist2);
        r += (d.color[0] - r) * w;
        g += (d.color[1] - g) * w;
        b += (d.color[2] - b) * w;
      }
      const o = (y * width + x) << 2;
      rgba[o] = r;
      rgba[o + 1] = g;
      rgba[o + 2] = b;
      rgba[o + 3] = 255;
    }
  }
  return encodePng(new Uint8Array(rgba.buffer), width, height);
}
