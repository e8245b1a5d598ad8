// Seeded Gaussian noise for the initial latents (and the LCM scheduler's per-step noise). Every image draws from its
// own stream keyed by its seed, so an image's noise does not depend on which other images share its batch: that is
// what makes a batched pass give each member the image it would get alone.

const TWO_POW_32 = 4294967296;

function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * xoshiro128** seeded through splitmix32 from both 32-bit halves of the seed (seeds go up to 2^32 - 1 + images, so
 * above 32 bits), with Box-Muller for normal draws. V8's Math.log/sin/cos are its own fdlibm ports, so the values are
 * the same on every platform a given Node version runs on.
 */
export class SeededGaussian {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    let state = (seed >>> 0) ^ 0x5851f42d;
    let hi = Math.floor(seed / TWO_POW_32) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      let out: number;
      [state, out] = splitmix32(state ^ hi);
      hi = rotl(hi, 7) ^ 0x2545f491;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform 32-bit integer. */
  private nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Standard normal draw. */
  next(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u1 = (this.nextUint32() + 1) / TWO_POW_32; // (0, 1]: log stays finite
    const u2 = this.nextUint32() / TWO_POW_32;
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Fills `out` with normal draws times `scale`. */
  fill(out: Float32Array, scale = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.next() * scale;
    return out;
  }
}
