// The autoscaler of one region (issue 13), as a long-running workflow `autoscaler:<region>` on the region's control
// queue: every `intervalMs` it samples the region's fleets (an activity), decides with seed 001's policy
// (core/autoscale.ts, pure, so it replays), and hands the steps to the scale driver (an activity). Durable without
// leader election: one workflow per region, whichever control worker runs it. Each step's inputs and reasons are in
// the history (the applyScale activity's input) and in the `autoscaler` query; the run continues as new every
// TICKS_PER_RUN rounds, carrying the policy and the triggers' memory. A `policy` signal replaces the policy (control
// workers send it at start, so a changed ATELIER_AUTOSCALE_POLICY takes effect without a restart of the workflow).
import {
  continueAsNew,
  defineQuery,
  defineSignal,
  log,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import type { AutoscalerActivities } from '../core/activities';
import { decideScale, type AutoscaleMemory, type FleetDecision } from '../core/autoscale';
import type { AutoscalePolicy } from '../core/autoscale-policy';
import { controlTaskQueue } from '../core/gpu';

export interface AutoscalerInput {
  readonly region: string;
  readonly policy: AutoscalePolicy;
  /** Time between two rounds, ms. */
  readonly intervalMs: number;
  /** The triggers' memory, carried across continue-as-new. */
  readonly memory?: AutoscaleMemory;
}

export interface AutoscalerView {
  readonly region: string;
  readonly rounds: number;
  /** The last round's decision for every fleet, steps and holds, with reasons. */
  readonly lastDecisions: readonly FleetDecision[];
  readonly lastRoundAt?: number;
  /** The last steps taken (up to 20), newest last. */
  readonly recentSteps: readonly (FleetDecision & { readonly at: number })[];
}

export const autoscalerQuery = defineQuery<AutoscalerView>('autoscaler');
export const autoscalerPolicySignal = defineSignal<[AutoscalePolicy]>('policy');

/** Rounds per run before continue-as-new: at 15 s, about 50 minutes and some 2,000 history events. */
export const TICKS_PER_RUN = 200;

export function autoscalerWorkflowId(region: string): string {
  return `autoscaler:${region}`;
}

export async function autoscaler(input: AutoscalerInput): Promise<void> {
  const acts = proxyActivities<AutoscalerActivities>({
    taskQueue: controlTaskQueue(input.region),
    startToCloseTimeout: '20s',
    retry: { maximumAttempts: 3, initialInterval: '1s' },
  });
  let policy = input.policy;
  let memory: AutoscaleMemory = input.memory ?? {};
  let view: AutoscalerView = { region: input.region, rounds: 0, lastDecisions: [], recentSteps: [] };
  setHandler(autoscalerQuery, () => view);
  setHandler(autoscalerPolicySignal, (next) => {
    policy = next;
  });
  for (let round = 0; round < TICKS_PER_RUN; round++) {
    try {
      const fleets = await acts.sampleFleets({ region: input.region });
      const now = Date.now();
      const decided = decideScale(policy, fleets, memory, now);
      const steps = decided.decisions.filter((d) => d.action !== 'hold');
      if (steps.length > 0) await acts.applyScale({ region: input.region, decisions: steps });
      // Remembered only once applied: a step the driver never took is decided again next round.
      memory = decided.memory;
      for (const step of steps) log.info('Autoscaler step', { region: input.region, ...step });
      view = {
        region: input.region,
        rounds: view.rounds + 1,
        lastDecisions: decided.decisions,
        lastRoundAt: now,
        recentSteps: [...view.recentSteps, ...steps.map((s) => ({ ...s, at: now }))].slice(-20),
      };
    } catch (err) {
      log.warn('Autoscaler round failed; the next one tries again', { region: input.region, error: String(err) });
    }
    await sleep(input.intervalMs);
  }
  await continueAsNew<typeof autoscaler>({ ...input, policy, memory });
}
