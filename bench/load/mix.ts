// The request mix: each request draws its model, tier, size and step count from the configured lists with a
// seeded generator, so two runs with the same flags send the same requests in the same order.
import type { RequestMix } from './options';

/** mulberry32: a tiny 32-bit PRNG, good enough to spread choices; not for anything secret. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROMPTS = [
  'a lighthouse at dusk',
  'a watercolor painting of a red fox in a snowy forest',
  'a cozy cabin in the mountains, digital art',
  'an astronaut riding a horse on the moon',
];

function pick<T>(items: readonly T[], random: () => number): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('empty choice list');
  return item;
}

/** The `generate` frame of one request. */
export function generateFrame(
  requestId: string,
  mix: RequestMix,
  random: () => number,
): Readonly<Record<string, unknown>> {
  const size = pick(mix.sizes, random);
  return {
    type: 'generate',
    requestId,
    prompt: pick(PROMPTS, random),
    model: pick(mix.models, random),
    tier: pick(mix.tiers, random),
    width: size.width,
    height: size.height,
    steps: pick(mix.steps, random),
    seed: Math.floor(random() * 0xffff_ffff),
  };
}
