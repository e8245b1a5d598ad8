// Lifecycle of a generation request, as clients see it in `status` frames and operators see it in the
// `GenerationStatus` search attribute.

export const GENERATION_STATUSES = [
  'queued',
  'safety_check',
  'pending_safety',
  'generating',
  'uploading',
  'completed',
  'failed',
  'cancelled',
] as const;
export type GenerationStatus = (typeof GENERATION_STATUSES)[number];

/** Search-attribute spelling, e.g. `GenerationStatus="Completed"` in the Web UI. */
export const STATUS_SEARCH_VALUE: Readonly<Record<GenerationStatus, string>> = {
  queued: 'Queued',
  safety_check: 'SafetyCheck',
  pending_safety: 'PendingSafety',
  generating: 'Generating',
  uploading: 'Uploading',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export function isTerminalStatus(status: GenerationStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}
