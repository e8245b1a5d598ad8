// What an API key may do: its plan. Each key's plan sets the tiers it may use, its rate of new requests per minute,
// how many of its requests may be in flight at once (accepted and not yet ended), and its weight in the GPU queues'
// fairness between users. Static development keys (ATELIER_API_KEYS) get the gateway's defaults; keys created
// through the admin API carry their own plan (runtime/api-key-store.ts).
import { z } from 'zod';
import { TIERS } from './tiers';

export const planSchema = z.strictObject({
  /** Tiers this key may request; turbo is the most expensive fleet at the top priority, so it is granted, not assumed. */
  tiers: z.array(z.enum(TIERS)).min(1),
  /** New requests per minute (seed 003: 100). A re-attach to an accepted request is never charged. */
  ratePerMinute: z.number().int().min(1).max(1_000_000),
  /** Requests accepted and not yet ended at once (seed 003 caps concurrent work: 50). */
  maxInFlight: z.number().int().min(1).max(100_000),
  /** Share of a GPU queue against other users' backlog: 2 gets twice the dispatches of 1 when both wait. */
  fairnessWeight: z.number().min(0.01).max(1000),
});

export type Plan = z.infer<typeof planSchema>;

/** The plan of a key created without one: seed 003's numbers, interactive and batch tiers, not turbo. */
export const DEFAULT_PLAN: Plan = { tiers: ['fast', 'relax'], ratePerMinute: 100, maxInFlight: 50, fairnessWeight: 1 };
