// History events per request: how much each kind of workflow writes to Temporal, read back from the server for a
// sample of completed workflows (history size drives the server's persistence work and replay cost).
import type { Client } from '@temporalio/client';
import { mean } from './stats';

/** Up to `max` ids spread evenly over the list, so the sample covers early and late requests alike. */
export function spreadSample<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return [...items];
  return Array.from({ length: max }, (_, i) => items[Math.floor((i * items.length) / max)] as T);
}

export interface HistorySample {
  /** Mean number of history events per workflow; null when none could be read. */
  readonly mean: number | null;
  readonly sampled: number;
}

export async function historyEventsPerWorkflow(
  client: Client,
  workflowIds: readonly string[],
  max = 20,
): Promise<HistorySample> {
  const counts: number[] = [];
  for (const id of spreadSample(workflowIds, max)) {
    try {
      const history = await client.workflow.getHandle(id).fetchHistory();
      counts.push(history.events?.length ?? 0);
    } catch {
      // A workflow the server no longer has (attach mode, retention) just leaves the sample smaller.
    }
  }
  const m = mean(counts);
  return { mean: m === null ? null : Math.round(m * 10) / 10, sampled: counts.length };
}
