// Custom search attributes of generation workflows. The local stack and the test environment register exactly
// these (infra/temporal.ts reads this list), so a new one here is registered everywhere.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const GenerationStatusKey = defineSearchAttributeKey('GenerationStatus', SearchAttributeType.KEYWORD);
export const TierKey = defineSearchAttributeKey('Tier', SearchAttributeType.KEYWORD);
export const GpuTypeKey = defineSearchAttributeKey('GpuType', SearchAttributeType.KEYWORD);
export const ModelKey = defineSearchAttributeKey('Model', SearchAttributeType.KEYWORD);
export const UserIdKey = defineSearchAttributeKey('UserId', SearchAttributeType.KEYWORD);
export const RegionKey = defineSearchAttributeKey('Region', SearchAttributeType.KEYWORD);

/** Set (true) on a request that ended quarantined as a poison request: `Quarantined = true` in the Web UI. */
export const QuarantinedKey = defineSearchAttributeKey('Quarantined', SearchAttributeType.BOOL);

export const SEARCH_ATTRIBUTES = [
  GenerationStatusKey,
  TierKey,
  GpuTypeKey,
  ModelKey,
  UserIdKey,
  RegionKey,
  QuarantinedKey,
] as const;
