// Service tiers and how they map to Temporal task-queue priority (1 = dispatched first, 5 = last).

export const TIERS = ['turbo', 'fast', 'relax'] as const;
export type Tier = (typeof TIERS)[number];

export const TIER_PRIORITY_KEY: Readonly<Record<Tier, number>> = {
  turbo: 1,
  fast: 3,
  relax: 5,
};

export function isTier(value: string): value is Tier {
  return (TIERS as readonly string[]).includes(value);
}
