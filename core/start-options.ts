// How a generation workflow is started: id, task queue, priority and the search attributes known at start. The
// gateway passes this to `client.workflow.start`; tests and the replay recorder use it too, so every start looks
// the same. Pure (no client import), so any process can build it.
import type { SearchAttributePair } from '@temporalio/common';
import { controlTaskQueue } from './gpu';
import { generationWorkflowId, type GenerationRequest } from './request';
import { GenerationStatusKey, ModelKey, RegionKey, TierKey, UserIdKey } from './search-attributes';
import { STATUS_SEARCH_VALUE } from './status';
import { TIER_PRIORITY_KEY } from './tiers';

/** Registered name of the workflow function in workflows/generate-image.ts. */
export const GENERATE_IMAGE_WORKFLOW = 'generateImage';

export interface GenerationStartOptions {
  readonly workflowType: typeof GENERATE_IMAGE_WORKFLOW;
  /** `gen:<user>:<requestId>`: a resubmitted requestId reaches the same workflow (and the same event log). */
  readonly workflowId: string;
  /** The control queue of the request's region; GPU queues are chosen by the workflow after routing. */
  readonly taskQueue: string;
  /** Tier as Temporal priority (1 first, 5 last); every activity of the workflow inherits it. */
  readonly priority: { readonly priorityKey: number };
  readonly typedSearchAttributes: SearchAttributePair[];
  readonly args: [GenerationRequest];
}

export function startGenerationOptions(req: GenerationRequest): GenerationStartOptions {
  return {
    workflowType: GENERATE_IMAGE_WORKFLOW,
    workflowId: generationWorkflowId(req.userId, req.requestId),
    taskQueue: controlTaskQueue(req.region),
    priority: { priorityKey: TIER_PRIORITY_KEY[req.tier] },
    typedSearchAttributes: [
      // Set at start so a request is findable as Queued before its first workflow task runs.
      { key: GenerationStatusKey, value: STATUS_SEARCH_VALUE.queued },
      { key: TierKey, value: req.tier },
      { key: ModelKey, value: req.model },
      { key: UserIdKey, value: req.userId },
      { key: RegionKey, value: req.region },
    ],
    args: [req],
  };
}
