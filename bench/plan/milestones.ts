// Seed 001's scaling milestones ("1M images/day", "10M images/day") as a checklist: each requirement against the plan
// (GPUs, regions) or against what Atelier has built, each action with its state and where it stands. The states are
// this repository's, written down here once; the planner prints them beside the plan's figures.
import type { Plan } from './plan';

export type ItemState = 'met' | 'short' | 'built' | 'in part' | 'not built';

export interface ChecklistItem {
  readonly item: string;
  readonly state: ItemState;
  readonly note: string;
}

export interface Milestone {
  readonly name: string;
  readonly dailyImages: number;
  readonly items: readonly ChecklistItem[];
}

function atLeast(item: string, have: number, need: number, unit: string): ChecklistItem {
  return { item, state: have >= need ? 'met' : 'short', note: `this plan: ${have} ${unit}; the seed: ${need}` };
}

export function milestones(plan: Plan): Milestone[] {
  return [
    {
      name: '1M images/day',
      dailyImages: 1_000_000,
      items: [
        atLeast('100 GPUs (mixed A10G/A100)', plan.gpus, 100, 'GPUs at peak'),
        atLeast('3 regions for latency', plan.regions, 3, 'regions'),
        {
          item: 'warm pool covering the top 3 models',
          state: 'in part',
          note: 'tier minimums keep A10G and H100 workers warm; a worker loads ATELIER_ONNX_PRELOAD before it polls',
        },
        { item: 'implement auto-scaling', state: 'built', note: 'seed 001 policy, autoscaler workflow, local driver' },
        { item: 'add a second region', state: 'built', note: 'regions, failover and image replication (issue 12)' },
        {
          item: 'CDN optimization',
          state: 'in part',
          note: 'image URLs are immutable and cacheable forever (capability mode); no CDN configured',
        },
      ],
    },
    {
      name: '10M images/day',
      dailyImages: 10_000_000,
      items: [
        atLeast('1000 GPUs', plan.gpus, 1000, 'GPUs at peak'),
        atLeast('5+ regions', plan.regions, 5, 'regions'),
        { item: 'advanced caching', state: 'not built', note: 'no result cache for repeated prompts and seeds' },
        { item: 'model sharding for large models', state: 'not built', note: 'each worker holds whole models' },
        { item: 'regional model registries', state: 'not built', note: 'one model registry file for all regions' },
        {
          item: 'custom inference optimization',
          state: 'not built',
          note: 'ONNX Runtime with CUDA or TensorRT by configuration; no custom kernels',
        },
        {
          item: 'dedicated safety infrastructure',
          state: 'in part',
          note: 'the safety screen runs as a service of its own (ATELIER_SAFETY_URL), not scaled apart from it',
        },
      ],
    },
  ];
}
